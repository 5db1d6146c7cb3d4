import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { diagnose, Doctor, watch } from '../doctor/diagnose.js';
import { DoctorError } from '../doctor/errors.js';
import { SEVERITIES, severityRank, type DoctorThresholds, type Severity } from '../doctor/findings.js';
import type { FdReader, SocketSource } from '../doctor/proc.js';
import { renderLine, renderText, type DiagnosisReport } from '../doctor/report.js';
import { InvalidOptionError } from '../pool/errors.js';
import { joinNegativeValues, MAX_TIMER_MS, UsageError } from './args.js';
import { ATTACH_WAIT_MS, joinAttachReport, renderAttach, requestAttachReport } from './attach-report.js';

/** Exit codes of `lifeguard doctor` (documented in docs/doctor.md). */
export const DoctorExit = Object.freeze({
  /** No finding at or above `--fail-on`. */
  OK: 0,
  /** At least one finding at or above `--fail-on`. */
  FINDINGS: 1,
  /** Bad arguments: unknown flag, missing or malformed value. */
  USAGE: 2,
  /** The process could not be examined: not Linux, no such process, permission denied (`LG_DOCTOR_*` error). */
  CANNOT_EXAMINE: 3,
});

export const DOCTOR_HELP = `Usage: lifeguard doctor --pid <pid> [options]
       lifeguard doctor --all [--top <n>] [--fail-on <severity>] [--samples <n>] [--interval-ms <ms>] [--json]

Examines a process's TCP sockets, file descriptors and threads from the kernel's tables (Linux /proc):
sockets by state and peer, CLOSE_WAIT sockets and how long they stay, how counts trend across samples,
descriptors against the limit. Prints findings with a code, a severity, the likely cause and the fix.

Options:
  --pid <pid>              process to examine (required)
  --samples <n>            samples to take; with --watch, how many recent samples trends cover  (default 3)
  --interval-ms <ms>       time between samples                                    (default 1000)
  --json                   print the report as JSON ({ pid, sockets, findings, ... }); with --watch, one line per sample
  --watch                  sample until Ctrl-C or SIGTERM: redraws on a terminal, one line per sample otherwise
  --fail-on <severity>     exit 1 when a finding is at least this severe: info, warning, critical  (default critical)
  --threshold <key=value>  change a finding threshold, e.g. --threshold closeWaitWarning=20 (repeatable)
  --all                    rank every process of the host (that this user may examine) by CLOSE_WAIT
                           sockets, descriptors against the limit and growth across --samples; names the worst
                           and lists CLOSE_WAIT and descriptor findings (--fail-on applies to every process)
  --top <n>                with --all: list the n worst processes  (default 15; --json: all)
  --serve <host:port>      sample every --interval-ms and serve the figures as Prometheus metrics on
                           http://host:port/metrics until Ctrl-C or SIGTERM (port 0: a free one, printed)
  --allow-remote           let --serve listen on an address other than loopback (127.0.0.0/8, ::1)
  --source <source>        where the sockets are read from: procfs (/proc/PID/net/tcp,tcp6), ss (netlink,
                           ss -tanHe run beside the descriptor reads) or auto (ss when found and the
                           process shares this network namespace, else procfs)   (default procfs)
  --fd-reader <reader>     with the /proc tables, who reads where the descriptors point: readlink
                           (coreutils' readlink in a child process, on another core while the tables are
                           read; inline when it cannot be used) or inline (this process)   (default readlink)
  --attach-wait-ms <ms>    a process running lifeguard/register with LIFEGUARD_REPORT_SIGNAL and
                           LIFEGUARD_REPORT_FILE is sent that signal, and its report joined: each socket
                           names the pool and line holding it; how long to wait for it, 0: do not ask (default 10000)
  -h, --help               show this help
  -v, --version            print the version

Exit codes: 0 no finding at or above --fail-on, 1 some finding at or above it, 2 bad arguments,
3 the process could not be examined (not Linux, no such process, permission denied).
Pool ownership of sockets is only known in-process: from lifeguard/register's report (docs/find-a-leak.md)
or diagnoseSelf() (docs/doctor.md).`;

interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly isTTY: boolean;
  readonly version: () => string;
  /** Aborted when the output goes away (the reader of a pipe exited): a watch stops then. */
  readonly outputClosed: AbortSignal;
}

function positiveInteger(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`option --${flag} expects an integer >= ${min}, got "${text}"`);
  return Number(text);
}

function timerMs(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) > MAX_TIMER_MS) {
    throw new UsageError(`option --${flag} expects an integer from 0 to ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node can set), got "${text}"`);
  }
  return Number(text);
}

/** Options that take a value, and what the value is (for "expects a value (...)"). */
const VALUE_OPTIONS = {
  pid: 'the pid of the process to examine',
  samples: 'how many samples',
  'interval-ms': 'milliseconds between samples',
  'fail-on': 'info, warning or critical',
  threshold: 'key=number',
  serve: 'host:port',
  top: 'how many processes to list',
  'attach-wait-ms': 'milliseconds to wait for the process\'s own report',
  source: 'auto, procfs or ss',
  'fd-reader': 'readlink or inline',
};

/** `host:port` or `[v6]:port`, loopback unless allowed otherwise. */
function serveAddress(text: string, allowRemote: boolean): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !Number.isInteger(port) || port > 65535) throw new UsageError(`option --serve expects host:port (e.g. 127.0.0.1:9464), got "${text}"`);
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!loopback && !allowRemote) {
    throw new UsageError(`option --serve: ${host} is not a loopback address; the metrics name the process's peers, so serving them beyond this host needs --allow-remote`);
  }
  return { host, port };
}

function thresholdsFrom(pairs: readonly string[]): DoctorThresholds {
  const out: Record<string, number> = {};
  for (const pair of pairs) {
    const match = /^([A-Za-z]+)=(-?\d+(?:\.\d+)?)$/.exec(pair);
    if (match?.[1] === undefined || match[2] === undefined) throw new UsageError(`option --threshold expects key=number (e.g. closeWaitWarning=20), got "${pair}"`);
    out[match[1]] = Number(match[2]);
  }
  return out;
}

function exitFor(report: DiagnosisReport, failOn: Severity): number {
  return report.findings.some((f) => severityRank(f.severity) >= severityRank(failOn)) ? DoctorExit.FINDINGS : DoctorExit.OK;
}

/** The command's options (docs/doctor.md documents each: a docs test checks it). */
export const DOCTOR_OPTIONS = {
  pid: { type: 'string' },
  samples: { type: 'string' },
  'interval-ms': { type: 'string' },
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
  'fail-on': { type: 'string' },
  threshold: { type: 'string', multiple: true },
  serve: { type: 'string' },
  all: { type: 'boolean' },
  top: { type: 'string' },
  'allow-remote': { type: 'boolean' },
  'attach-wait-ms': { type: 'string' },
  source: { type: 'string' },
  'fd-reader': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

function parse(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: DOCTOR_OPTIONS, allowPositionals: false, strict: true }).values;
}

/** `lifeguard doctor ...`: returns the exit code. */
export async function doctorCommand(argv: readonly string[], io: Io): Promise<number> {
  let values: ReturnType<typeof parse>;
  try {
    values = parse(joinNegativeValues(argv, VALUE_OPTIONS));
  } catch (error) {
    io.err(`lifeguard doctor: ${(error as Error).message}\nRun "lifeguard doctor --help" for usage.`);
    return DoctorExit.USAGE;
  }
  if (values.help === true) {
    io.out(DOCTOR_HELP);
    return DoctorExit.OK;
  }
  if (values.version === true) {
    io.out(io.version());
    return DoctorExit.OK;
  }
  let pid: number, samples: number, intervalMs: number, failOn: Severity, thresholds: DoctorThresholds, attachWaitMs: number;
  let serve: { host: string; port: number } | undefined;
  let top: number | undefined;
  let source: SocketSource;
  let fdReader: FdReader;
  try {
    if (values.all === true && (values.pid !== undefined || values.serve !== undefined || values.watch === true)) throw new UsageError('option --all examines every process: it takes no --pid, --serve or --watch');
    if (values.pid === undefined && values.all !== true) throw new UsageError('option --pid <pid> is required: which process to examine (or --all for every process)');
    pid = positiveInteger('pid', values.pid, 1, 1);
    samples = positiveInteger('samples', values.samples, values.all === true ? 2 : 3, 1);
    intervalMs = timerMs('interval-ms', values['interval-ms'], 1000);
    attachWaitMs = timerMs('attach-wait-ms', values['attach-wait-ms'], ATTACH_WAIT_MS);
    const severity = values['fail-on'] ?? 'critical';
    if (!(SEVERITIES as readonly string[]).includes(severity)) throw new UsageError(`option --fail-on expects one of ${SEVERITIES.join(', ')}, got "${severity}"`);
    failOn = severity as Severity;
    thresholds = thresholdsFrom(values.threshold ?? []);
    if (values.top !== undefined) {
      if (values.all !== true) throw new UsageError('option --top only applies to --all (how many processes to list)');
      top = positiveInteger('top', values.top, 15, 1);
    }
    if (values.source !== undefined && values.all === true) throw new UsageError('option --source applies to --pid (--all reads /proc)');
    const from = values.source ?? 'procfs';
    if (from !== 'auto' && from !== 'procfs' && from !== 'ss') throw new UsageError(`option --source expects one of auto, procfs, ss, got "${from}"`);
    source = from;
    if (values['fd-reader'] !== undefined && values.all === true) throw new UsageError('option --fd-reader applies to --pid (--all reads every process\'s descriptors itself)');
    const reader = values['fd-reader'] ?? 'readlink';
    if (reader !== 'readlink' && reader !== 'inline') throw new UsageError(`option --fd-reader expects one of readlink, inline, got "${reader}"`);
    fdReader = reader;
    if (values.serve !== undefined) serve = serveAddress(values.serve, values['allow-remote'] === true);
    else if (values['allow-remote'] === true) throw new UsageError('option --allow-remote only applies to --serve');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`lifeguard doctor: ${error.message}\nRun "lifeguard doctor --help" for usage.`);
    return DoctorExit.USAGE;
  }
  const options = { pid, samples, intervalMs, thresholds, source, fdReader };
  try {
    if (values.all === true) {
      // --all and --serve load their modules (node:http is a tenth of the start-up) only when asked for.
      const { renderHost, surveyHost } = await import('../doctor/host.js');
      const host = await surveyHost({ samples, intervalMs, thresholds });
      if (values.json === true) io.out(JSON.stringify(top === undefined ? host : { ...host, processes: host.processes.slice(0, top) }, null, 2));
      else io.out(renderHost(host, top));
      // Every process counts for --fail-on, listed or not.
      const failed = host.processes.some((p) => p.findings.some((f) => severityRank(f.severity) >= severityRank(failOn)));
      return failed ? DoctorExit.FINDINGS : DoctorExit.OK;
    }
    if (serve !== undefined) return await serveLoop(options, serve, io);
    if (values.watch !== true) {
      // Asked first: the process's report and the doctor's samples take their time side by side.
      const asking = attachWaitMs > 0 ? requestAttachReport(pid, attachWaitMs) : null;
      asking?.catch(() => undefined);
      const plain = await diagnose(options);
      const report = asking === null ? null : joinAttachReport(plain, await asking);
      const text = (): string => (report === null ? renderText(plain) : `${renderText(plain)}\n${renderAttach(report)}`);
      io.out(values.json === true ? JSON.stringify(report ?? plain, null, 2) : text());
      return exitFor(plain, failOn);
    }
    return await watchLoop(options, values.json === true, failOn, io);
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      io.err(`lifeguard doctor: ${error.message}\nRun "lifeguard doctor --help" for usage.`);
      return DoctorExit.USAGE;
    }
    if (error instanceof DoctorError) {
      io.err(`lifeguard doctor: ${error.code}: ${error.message}`);
      return DoctorExit.CANNOT_EXAMINE;
    }
    throw error;
  }
}

// Ends on SIGINT, SIGTERM or a closed output with the exit code of the last report, so `timeout 60 lifeguard doctor --watch`
// still gates on what it saw; the signal listeners are removed on the way out.
async function watchLoop(options: { pid: number; samples: number; intervalMs: number; thresholds: DoctorThresholds; source: SocketSource; fdReader: FdReader }, json: boolean, failOn: Severity, io: Io): Promise<number> {
  const controller = new AbortController();
  const stop = (): void => { controller.abort(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let code: number = DoctorExit.OK;
  try {
    for await (const report of watch({ ...options, signal: AbortSignal.any([controller.signal, io.outputClosed]) })) {
      code = exitFor(report, failOn);
      if (json) io.out(JSON.stringify(report));
      else if (io.isTTY) io.out(`\x1b[H\x1b[2J${renderText(report)}\n\n(refreshing every ${options.intervalMs} ms; Ctrl-C to stop)`);
      else io.out(renderLine(report));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return code;
}

// The sidecar: one Doctor sampling on its own schedule, the latest report rendered at each scrape. A failed
// sample (the process exited) is served as <prefix>doctor_up 0 rather than ending the server.
async function serveLoop(options: { pid: number; samples: number; intervalMs: number; thresholds: DoctorThresholds; source: SocketSource; fdReader: FdReader }, address: { host: string; port: number }, io: Io): Promise<number> {
  const [{ createServer }, { renderPrometheus }] = await Promise.all([import('node:http'), import('../doctor/prometheus.js')]);
  const doctor = new Doctor(options);
  let report: DiagnosisReport | null = null;
  let failure: string | null = null;
  const take = async (): Promise<void> => {
    try {
      await doctor.sample();
      report = doctor.report();
      failure = null;
    } catch (error) {
      if (!(error instanceof DoctorError)) throw error;
      report = null;
      failure = `${error.code}: ${error.message}`;
    }
  };
  // The first sample fails like the doctor does (exit 3) when the process cannot be examined at all.
  await doctor.sample();
  report = doctor.report();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    const body = renderPrometheus(report, { up: failure === null }) + (failure === null ? '' : `# last sample failed: ${failure.replace(/\n/g, ' ')}\n`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => { server.off('error', reject); resolve(); });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  io.err(`lifeguard doctor: serving the metrics of process ${options.pid} on http://${host}:${bound.port}/metrics every ${options.intervalMs} ms (Ctrl-C to stop)`);
  const controller = new AbortController();
  const stop = (): void => { controller.abort(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const signal = AbortSignal.any([controller.signal, io.outputClosed]);
  try {
    while (!signal.aborted) {
      try {
        await sleep(options.intervalMs, undefined, { signal });
      } catch {
        break;
      }
      await take();
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return DoctorExit.OK;
}
