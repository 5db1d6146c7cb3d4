import { parseArgs } from 'node:util';
import { joinNegativeValues, MAX_TIMER_MS } from '../cli/args.js';
import { DoctorError } from '../doctor/errors.js';
import { snapshotProcess } from '../doctor/proc.js';
import { startDashboard } from './server.js';

export const DASHBOARD_HELP = `Usage: lifeguard dashboard --pid <pid> [--port <port>] [--host <address>] [--interval-ms <ms>] [--duration-ms <ms>]

Serves a live web page of a process's TCP sockets by state and remote endpoint, its file descriptors
and threads, with alerts (CLOSE_WAIT piling up, descriptors near the limit, threads growing), and
/metrics. Linux only (reads /proc). Runs until Ctrl-C, or for --duration-ms.

A process's own pools, leases and leak reports are visible only from inside it: mount the dashboard
there with startDashboard() or mountDashboard() from 'lifeguard/dashboard' (see docs/dashboard.md).

Options:
  --pid <pid>          process to watch (required)
  --port <port>        TCP port (default 0: a free one; the URL is printed)
  --host <address>     address to listen on (default 127.0.0.1; the page shows socket endpoints)
  --interval-ms <ms>   sampling interval (default 1000)
  --duration-ms <ms>   stop after this long (default: run until interrupted)
  -h, --help           show this help`;

/** Where the command writes, and what stops it; the defaults are the process's own. */
export interface DashboardCommandIO {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Stops the dashboard when aborted (the CLI aborts on SIGINT and SIGTERM). */
  readonly signal?: AbortSignal;
}

function integer(name: string, text: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw new Error(`option --${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

/**
 * `lifeguard dashboard`: resolves with the exit code (0 after a clean stop, 2 for a usage error, 3 when the
 * process cannot be examined, as with the doctor; 1 when the dashboard cannot start).
 */
export async function runDashboardCommand(argv: readonly string[], io?: DashboardCommandIO): Promise<number> {
  const out = io?.out ?? ((line: string) => { process.stdout.write(`${line}\n`); });
  const err = io?.err ?? ((line: string) => { process.stderr.write(`${line}\n`); });
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(argv, {
        pid: 'the pid of the process to watch', port: 'a TCP port', host: 'an address to listen on',
        'interval-ms': 'milliseconds between samples', 'duration-ms': 'milliseconds to run',
      }),
      options: {
        pid: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' },
        'interval-ms': { type: 'string' }, 'duration-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (error) {
    err(`lifeguard dashboard: ${error instanceof Error ? error.message : String(error)}\n\n${DASHBOARD_HELP}`);
    return 2;
  }
  if (values.help === true) {
    out(DASHBOARD_HELP);
    return 0;
  }
  let pid, port, intervalMs, durationMs;
  try {
    pid = integer('pid', values.pid, 1);
    if (pid === undefined) throw new Error('--pid is required');
    port = integer('port', values.port, 0, 65535) ?? 0;
    intervalMs = integer('interval-ms', values['interval-ms'], 10, MAX_TIMER_MS) ?? 1000;
    durationMs = integer('duration-ms', values['duration-ms'], 1, MAX_TIMER_MS);
  } catch (error) {
    err(`lifeguard dashboard: ${error instanceof Error ? error.message : String(error)}\n\n${DASHBOARD_HELP}`);
    return 2;
  }
  if (process.platform !== 'linux') {
    err(`lifeguard dashboard: it reads the kernel's tables under /proc, which only Linux has; this is ${process.platform}`);
    return 1;
  }
  // Like the doctor: a process that cannot be examined (gone, another user's) is exit 3 before anything starts.
  try {
    await snapshotProcess(pid);
  } catch (error) {
    if (!(error instanceof DoctorError)) throw error;
    err(`lifeguard dashboard: ${error.code}: ${error.message}`);
    return 3;
  }
  let dashboard;
  try {
    dashboard = await startDashboard({
      pid, port, host: values.host ?? '127.0.0.1', sampleIntervalMs: intervalMs, title: `Lifeguard: process ${pid}`,
      alerts: { pid, intervalMs, log: (line) => { err(line); } },
    });
  } catch (error) {
    err(`lifeguard dashboard: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  const running = dashboard;
  out(`lifeguard dashboard of process ${pid}: ${running.url}${durationMs === undefined ? ' (Ctrl-C to stop)' : ` for ${durationMs} ms`}`);
  await new Promise<void>((resolve) => {
    const signals: NodeJS.Signals[] = io === undefined ? ['SIGINT', 'SIGTERM'] : [];
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      for (const s of signals) process.off(s, stop);
      io?.signal?.removeEventListener('abort', stop);
      if (timer !== undefined) clearTimeout(timer);
      resolve();
    };
    for (const s of signals) process.once(s, stop);
    if (io?.signal?.aborted === true) stop();
    io?.signal?.addEventListener('abort', stop, { once: true });
    if (durationMs !== undefined) timer = setTimeout(stop, durationMs);
  });
  await running.close();
  out('lifeguard dashboard: stopped');
  return 0;
}
