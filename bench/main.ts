import { mkdirSync, writeFileSync } from 'node:fs';
import { benchPools, type PoolCase } from './pool.js';
import { formatOps, table } from './harness.js';
import { PAIRS, benchHttp, httpReport } from './http.js';
import { benchInstructions } from './instructions.js';
import { benchServer, benchServerOverhead, OVERHEAD_VARIANTS, SERVER_SCENARIO } from './server.js';
import { benchDoctor } from './doctor.js';
import { attachReport, benchAttach } from './attach.js';

/**
 * `npm run bench` (about 6 minutes), `npm run bench -- --quick` (about a minute), and `-- --only=pool`,
 * `-- --only=http` or `-- --only=server` for one part. `-- --only=instructions` counts the HTTP clients' instructions per
 * request under valgrind (about 7 minutes whether or not `--quick` is given; not part of the default run).
 * `-- --processes=N` sets the HTTP part's client processes per library (default 12; each adds about 22 s).
 * `-- --only=attach` runs an HTTP app plain and under `lifeguard/register` in turns (about a minute; 30 s with `--quick`).
 * `-- --only=doctor` times one doctor sample against `ss -tanp` on 20,000 to 100,000 sockets (about a minute). Speed is only ever reported as ratios between libraries measured in the
 * same run, never asserted in tests.
 */
const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const PARTS = ['pool', 'http', 'instructions', 'server', 'doctor', 'attach'];
if (only !== undefined && !PARTS.includes(only)) {
  console.error(`--only: expected one of ${PARTS.map((p) => JSON.stringify(p)).join(', ')}, got ${JSON.stringify(only)}`);
  process.exit(2);
}
const rounds = quick ? 3 : 5;
const budgetSeconds = quick ? 0.25 : 0.8;

function report(cases: readonly PoolCase[]): string {
  const rows: string[][] = [];
  for (const scenario of [...new Set(cases.map((c) => c.scenario))]) {
    const of = (library: string): number => cases.find((c) => c.scenario === scenario && c.library === library)?.opsPerSec ?? NaN;
    const baseline = of('baseline');
    const bestPeer = Math.max(of('generic-pool'), of('tarn'));
    for (const c of cases.filter((x) => x.scenario === scenario)) {
      rows.push([scenario, c.library, formatOps(c.opsPerSec), `${(c.opsPerSec / baseline).toFixed(2)}x`, `${(c.opsPerSec / bestPeer).toFixed(2)}x`]);
    }
  }
  return table(['scenario', 'library', 'ops/s', 'vs baseline', 'vs best peer'], rows);
}

const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });

if (only === undefined || only === 'pool') {
  const cases = await benchPools(rounds, budgetSeconds);
  console.log(`pool benchmark (node ${process.version}, ${rounds} rounds, median)`);
  console.log(report(cases));
  writeFileSync(new URL('pool.json', dir), `${JSON.stringify({ node: process.version, cases }, null, 2)}\n`);
  console.log(`\nwrote bench/results/pool.json\n`);
}

if (only === undefined || only === 'http') {
  // --processes=N: client processes per library (a run within two minutes on a shared machine: 4).
  const processes = Number(process.argv.find((a) => a.startsWith('--processes='))?.slice('--processes='.length) ?? (quick ? 2 : 12));
  if (!Number.isInteger(processes) || processes < 1) {
    console.error(`--processes: expected a positive integer, got ${String(processes)}`);
    process.exit(2);
  }
  const http = await benchHttp(processes, quick ? 8 : 10, 250, quick ? 4 : 6, 500);
  console.log(`HTTP benchmark (node ${process.version}; ${http.processes} client processes per library in turn, ${http.slices} slices of ${http.sliceMs} ms each after ${http.warmMsPerProcess} ms of warm-up per process; server and clients ${http.pinned ? 'on cores of their own' : 'not pinned'})`);
  console.log(httpReport(http));
  writeFileSync(new URL('http.json', dir), `${JSON.stringify({ node: process.version, ...http }, null, 2)}\n`);
  console.log(`\nwrote bench/results/http.json`);
}

if (only === undefined || only === 'server') {
  const cases = await benchServer(quick ? 3 : 9);
  const ours = cases.find((c) => c.library === 'lifeguard')?.medianCloseMs ?? NaN;
  console.log(`\nServer shutdown benchmark (node ${process.version}; ${SERVER_SCENARIO}; ${String(cases[0]?.rounds ?? 0)} rounds each, interleaved)`);
  console.log(table(['library', 'time to close (median ms)', 'max ms', 'vs lifeguard', 'in flight (median)', 'dropped', 'reset before read', 'refused', 'clients not told'], cases.map((c) => [
    c.library, c.medianCloseMs.toFixed(1), c.maxCloseMs.toFixed(1), `${(c.medianCloseMs / ours).toFixed(2)}x`, String(c.medianInFlight), String(c.dropped), String(c.unread), String(c.refused), String(c.notTold),
  ])));
  const overhead = await benchServerOverhead(quick ? 6 : 12, quick ? 500 : 1000);
  console.log(`\nServer guard overhead (node ${process.version}; one http server per variant, ${String(overhead.concurrency)} keep-alive loops in a worker thread, ${String(overhead.slices)} slices of ${String(overhead.sliceMs)} ms each, servers in turn)`);
  console.log(table(['server', 'requests/s', 'vs plain'], OVERHEAD_VARIANTS.map((v) => [v, formatOps(overhead.perSecond[v]), `${overhead.ratio[v].toFixed(2)}x`])));
  writeFileSync(new URL('server.json', dir), `${JSON.stringify({ node: process.version, scenario: SERVER_SCENARIO, cases }, null, 2)}\n`);
  writeFileSync(new URL('server-overhead.json', dir), `${JSON.stringify({ node: process.version, quick, ...overhead }, null, 2)}\n`);
  console.log(`\nwrote bench/results/server.json and bench/results/server-overhead.json`);
}

if (only === 'instructions') {
  const bench = await benchInstructions(2000, 12000);
  const per = (library: string): number => bench.cases.find((c) => c.library === library)?.instructionsPerRequest ?? NaN;
  const ratio = new Map<string, string>(PAIRS.map(([ours, peer]) => [ours, `${(per(ours) / per(peer)).toFixed(3)}x ${peer}`]));
  console.log(`HTTP instructions per request (node ${process.version}, ${bench.valgrind} callgrind; runs of ${String(bench.requests[0])} and ${String(bench.requests[1])} requests)`);
  console.log(table(['library', 'instructions/request', 'ratio'], bench.cases.map((c) => [c.library, c.instructionsPerRequest.toLocaleString('en-US'), ratio.get(c.library) ?? ''])));
  writeFileSync(new URL('instructions.json', dir), `${JSON.stringify({ node: process.version, valgrind: bench.valgrind, requests: bench.requests, cases: bench.cases }, null, 2)}\n`);
  console.log(`\nwrote bench/results/instructions.json`);
}

if (only === undefined || only === 'doctor') {
  // --sizes=20000,100000 picks the namespace sizes (the full set takes minutes once ss -tanp is slow).
  const sizes = process.argv.find((a) => a.startsWith('--sizes='))?.slice('--sizes='.length).split(',').map(Number);
  const cases = await benchDoctor(sizes ?? (quick ? [20_000, 40_000] : [20_000, 40_000, 60_000, 100_000]), quick ? 3 : 5);
  console.log(`doctor benchmark (node ${process.version}; one sample of a process with ${cases[0]?.processSockets ?? '?'} sockets by \`lifeguard doctor --pid N --samples 1\`, process start included, against \`ss -tanp\`; median wall time, peak RSS)`);
  console.log(table(['sockets in namespace', 'in process', 'ss ms', 'ss peak MB', 'doctor ms', 'doctor peak MB', 'doctor/ss', 'CPU ss ms', 'CPU doctor ms', 'CPU doctor/ss', '--source ss ms', '--source ss/ss', '--fd-reader inline ms', 'inline/ss', 'node -e "" ms', 'node -e "" peak MB', 'doctor source'], cases.map((c) => [
    String(c.namespaceSockets), String(c.processSockets), c.ssMs.toFixed(0), (c.ssPeakKb / 1024).toFixed(1), c.doctorMs.toFixed(0), (c.doctorPeakKb / 1024).toFixed(1), `${c.ratio.toFixed(2)}x`, c.ssCpuMs.toFixed(0), c.doctorCpuMs.toFixed(0), `${c.cpuRatio.toFixed(2)}x`, c.ssSourceMs.toFixed(0), `${c.ssSourceRatio.toFixed(2)}x`, c.inlineMs.toFixed(0), `${c.inlineRatio.toFixed(2)}x`, c.nodeMs.toFixed(0), (c.nodePeakKb / 1024).toFixed(1), c.source,
  ])));
  writeFileSync(new URL('doctor.json', dir), `${JSON.stringify({ node: process.version, cases }, null, 2)}\n`);
  console.log(`\nwrote bench/results/doctor.json`);
}

if (only === undefined || only === 'attach') {
  const pairs = quick ? 2 : 3;
  const requests = quick ? 500 : 1000;
  const cases = await benchAttach(pairs, requests);
  console.log(`\nlifeguard/register overhead (node ${process.version}; test/fixtures/register/overhead-app.mjs, ${requests} keep-alive requests at concurrency 8 per client, plain and attached in turns, ${pairs} pairs, median; attached/plain)`);
  console.log(attachReport(cases));
  writeFileSync(new URL('attach.json', dir), `${JSON.stringify({ node: process.version, pairs, requests, cases }, null, 2)}\n`);
  console.log(`\nwrote bench/results/attach.json`);
}
