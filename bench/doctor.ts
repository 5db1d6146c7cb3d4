/**
 * The doctor's cost against `ss -tanp` on generated socket sets: one sample of a process holding 20,000
 * sockets, then namespaces of 20,000 to 100,000 sockets (several holder processes), each measured side by
 * side in one run as wall time and peak RSS, reported as ratios; the doctor from the /proc tables (its default,
 * the descriptors read by readlink beside), with `--source ss` (streamed, readlink beside) and with
 * `--fd-reader inline` (the descriptors read by its own thread).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { median } from './harness.js';

const holderScript = new URL('./doctor-holder.js', import.meta.url).pathname;
const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
const TIME = '/usr/bin/time';

export interface DoctorCase {
  /** Sockets in the network namespace (every holder), and in the examined process. */
  readonly namespaceSockets: number;
  readonly processSockets: number;
  readonly ssMs: number;
  readonly ssPeakKb: number;
  readonly doctorMs: number;
  readonly doctorPeakKb: number;
  /** Doctor wall time over ss wall time: at most 1 is the goal. */
  readonly ratio: number;
  /** User + system CPU time (ms, from GNU time): steadier than wall time on a shared host. */
  readonly ssCpuMs: number;
  readonly doctorCpuMs: number;
  /** Doctor CPU time over ss CPU time. */
  readonly cpuRatio: number;
  /** A bare `node -e ""` in the same rounds: node's own start and memory, the floor under the doctor's figures. */
  readonly nodeMs: number;
  readonly nodePeakKb: number;
  /** The doctor's own report of what it read. */
  readonly source: string;
  /** `--source ss` in the same rounds (netlink: `ss -tanHe` beside the descriptor reads): wall, CPU (ss's included), peak RSS. */
  readonly ssSourceMs: number;
  readonly ssSourceCpuMs: number;
  readonly ssSourcePeakKb: number;
  /** `--source ss` wall time over `ss -tanp` wall time. */
  readonly ssSourceRatio: number;
  /** `--fd-reader inline` (the descriptors read by the doctor's own thread, not by readlink beside) in the same rounds: wall, CPU, peak RSS. */
  readonly inlineMs: number;
  readonly inlineCpuMs: number;
  readonly inlinePeakKb: number;
  /** `--fd-reader inline` wall time over `ss -tanp` wall time. */
  readonly inlineRatio: number;
}

interface Holder {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
}

/** Starts a holder of `connections` connections (2 sockets each) with a descriptor limit to match. */
async function startHolder(connections: number, index: number): Promise<Holder> {
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${connections * 2 + 100} 2>/dev/null || ulimit -n $(ulimit -Hn); exec "$0" "$@"`, process.execPath, holderScript, String(connections), `127.0.0.${index + 2}`]);
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => { err += chunk; });
  const [line] = await Promise.race([
    once(child.stdout, 'data') as Promise<[Buffer]>,
    once(child, 'exit').then(() => { throw new Error(`a socket holder exited before it was ready (descriptor limit too low? run as root): ${err}`); }),
  ]);
  const match = /^ready (\d+)/.exec(line.toString());
  if (match?.[1] === undefined) throw new Error(`holder said ${line.toString()}`);
  return { child, pid: Number(match[1]) };
}

async function stopHolder(holder: Holder): Promise<void> {
  const exited = once(holder.child, 'exit');
  holder.child.stdin.end();
  await exited;
}

/** Wall time (ms, measured here) and peak RSS (KB, from GNU time) of one run of a command, its output discarded. */
function timed(command: string, args: readonly string[]): { ms: number; cpuMs: number; peakKb: number; stderr: string } {
  const start = process.hrtime.bigint();
  const run = spawnSync(TIME, ['-f', 'peak=%M cpu=%U+%S', command, ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const figures = /peak=(\d+) cpu=([\d.]+)\+([\d.]+)\s*$/.exec(run.stderr);
  if (figures?.[1] === undefined || figures[2] === undefined || figures[3] === undefined) throw new Error(`${command} ${args.join(' ')}: ${run.stderr}`);
  return { ms, cpuMs: (Number(figures[2]) + Number(figures[3])) * 1000, peakKb: Number(figures[1]), stderr: run.stderr };
}

function countSockets(pid: number): number {
  const run = spawnSync(process.execPath, [cli, 'doctor', '--pid', String(pid), '--samples', '1', '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const report = JSON.parse(run.stdout) as { sockets: unknown[]; source?: string };
  return report.sockets.length;
}

function sourceOf(pid: number): string {
  const run = spawnSync(process.execPath, [cli, 'doctor', '--pid', String(pid), '--samples', '1'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return /^Source: (.*)$/m.exec(run.stdout)?.[1] ?? 'not reported';
}

/**
 * For each namespace size: holders of 10,000 connections (20,000 sockets) each, the first one examined.
 * `rounds` runs of each command, alternating, median taken.
 */
export async function benchDoctor(namespaceSizes: readonly number[], rounds: number): Promise<DoctorCase[]> {
  if (process.platform !== 'linux') throw new Error('the doctor benchmark reads Linux /proc');
  if (!existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed for peak memory: apt-get install time`);
  // Each holder needs two descriptors per connection; stay under the hard limit (raising it needs CAP_SYS_RESOURCE).
  const hard = Number(spawnSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim());
  const perHolder = Math.min(10_000, Math.floor(((Number.isFinite(hard) ? hard : 20_000) - 100) / 2));
  const cases: DoctorCase[] = [];
  const holders: Holder[] = [];
  try {
    for (const size of namespaceSizes) {
      while (holders.length * perHolder * 2 < size * 0.99) holders.push(await startHolder(perHolder, holders.length));
      const target = holders[0];
      if (target === undefined) throw new Error('no socket holder started');
      const ss: { ms: number; cpuMs: number; peakKb: number }[] = [];
      const doctor: { ms: number; cpuMs: number; peakKb: number }[] = [];
      const bare: { ms: number; cpuMs: number; peakKb: number }[] = [];
      const viaSs: { ms: number; cpuMs: number; peakKb: number }[] = [];
      const inline: { ms: number; cpuMs: number; peakKb: number }[] = [];
      for (let round = 0; round < rounds; round++) {
        ss.push(timed('ss', ['-tanp']));
        doctor.push(timed(process.execPath, [cli, 'doctor', '--pid', String(target.pid), '--samples', '1']));
        bare.push(timed(process.execPath, ['-e', '']));
        viaSs.push(timed(process.execPath, [cli, 'doctor', '--pid', String(target.pid), '--samples', '1', '--source', 'ss']));
        inline.push(timed(process.execPath, [cli, 'doctor', '--pid', String(target.pid), '--samples', '1', '--fd-reader', 'inline']));
      }
      const ssMs = median(ss.map((r) => r.ms));
      const doctorMs = median(doctor.map((r) => r.ms));
      cases.push({
        namespaceSockets: holders.length * perHolder * 2,
        processSockets: countSockets(target.pid),
        ssMs, ssPeakKb: Math.max(...ss.map((r) => r.peakKb)),
        doctorMs, doctorPeakKb: Math.max(...doctor.map((r) => r.peakKb)),
        ratio: doctorMs / ssMs,
        ssCpuMs: median(ss.map((r) => r.cpuMs)),
        doctorCpuMs: median(doctor.map((r) => r.cpuMs)),
        cpuRatio: median(doctor.map((r) => r.cpuMs)) / median(ss.map((r) => r.cpuMs)),
        nodeMs: median(bare.map((r) => r.ms)),
        nodePeakKb: Math.max(...bare.map((r) => r.peakKb)),
        source: sourceOf(target.pid),
        ssSourceMs: median(viaSs.map((r) => r.ms)),
        ssSourceCpuMs: median(viaSs.map((r) => r.cpuMs)),
        ssSourcePeakKb: Math.max(...viaSs.map((r) => r.peakKb)),
        ssSourceRatio: median(viaSs.map((r) => r.ms)) / ssMs,
        inlineMs: median(inline.map((r) => r.ms)),
        inlineCpuMs: median(inline.map((r) => r.cpuMs)),
        inlinePeakKb: Math.max(...inline.map((r) => r.peakKb)),
        inlineRatio: median(inline.map((r) => r.ms)) / ssMs,
      });
    }
  } finally {
    for (const holder of holders) await stopHolder(holder);
  }
  return cases;
}
