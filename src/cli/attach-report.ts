/**
 * `lifeguard doctor --pid N` on a process that runs `lifeguard/register`: asks it for its own report (the
 * signal it listens to), waits a bounded time for the file, and joins the pools and leases it names to the
 * sockets the doctor read from the kernel.
 */
import { readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { describeOwner, seconds, type SocketOwner } from '../doctor/join.js';
import type { DiagnosisReport, ReportSocket } from '../doctor/report.js';

/** How long the doctor waits for the process's report by default (its `diagnoseSelf()` samples for ~2 s). */
export const ATTACH_WAIT_MS = 10_000;
const POLL_MS = 50;

// Synchronous reads of small files, and a plain timer: node:fs/promises (with the readline and stream
// modules it loads) and node:timers/promises were about 30 ms of every `lifeguard doctor --pid N` start.
const sleep = (ms: number): Promise<void> => new Promise((resolve) => { setTimeout(resolve, ms); });

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** What the doctor learnt from the process's attach, added to its report as `attach`. */
export interface AttachSummary {
  /** `joined`: owners added; otherwise why not (no attach, no signal or file, no answer in time). */
  readonly status: 'joined' | 'not-attached' | 'no-report-signal' | 'no-report-file' | 'not-listening' | 'no-answer' | 'failed';
  readonly detail: string;
  readonly reportFile: string | null;
  /** When the process took its report. */
  readonly takenAt: string | null;
  /** Sockets of the doctor's report that a pool of the process owns. */
  readonly owned: number;
}

export type AttachedReport = DiagnosisReport & { readonly attach: AttachSummary };

interface AttachEnv {
  readonly attached: boolean;
  readonly signal: string | null;
  readonly file: string | null;
}

/** Reads how the process was started: `lifeguard/register` in its arguments or NODE_OPTIONS, and its report variables. */
function attachEnv(pid: number, procRoot: string): AttachEnv {
  const environ = readText(`${procRoot}/${pid}/environ`);
  const cmdline = readText(`${procRoot}/${pid}/cmdline`);
  const env = new Map<string, string>();
  for (const entry of environ.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const register = /lifeguard[\\/](?:dist[\\/]src[\\/])?register\b/;
  const attached = register.test(cmdline.replaceAll('\0', ' ')) || register.test(env.get('NODE_OPTIONS') ?? '');
  const nonEmpty = (value: string | undefined): string | null => (value === undefined || value === '' ? null : value);
  return { attached, signal: nonEmpty(env.get('LIFEGUARD_REPORT_SIGNAL')), file: nonEmpty(env.get('LIFEGUARD_REPORT_FILE')) };
}

/**
 * Whether the process has a handler for the signal (/proc/N/status `SigCgt`): sending one it does not
 * catch would kill it (SIGUSR2's default action is to terminate).
 */
function catches(pid: number, signal: string, procRoot: string): boolean {
  const number = (constants.signals as Record<string, number | undefined>)[signal];
  if (number === undefined) return false;
  const status = readText(`${procRoot}/${pid}/status`);
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return mask !== undefined && ((BigInt(`0x${mask}`) >> BigInt(number - 1)) & 1n) === 1n;
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

interface SelfReport {
  readonly pid?: number;
  readonly takenAt?: string;
  readonly sockets?: readonly { readonly inode?: number; readonly owner?: SocketOwner | null }[];
}

/**
 * Asks the process for its report: sends its `LIFEGUARD_REPORT_SIGNAL` (only if it catches it) and waits
 * up to `waitMs` for `LIFEGUARD_REPORT_FILE` to be rewritten. Returns the report or why there is none.
 */
export interface AttachAnswer {
  readonly report: SelfReport | null;
  readonly summary: Omit<AttachSummary, 'owned' | 'takenAt'>;
}

export async function requestAttachReport(pid: number, waitMs: number, procRoot = '/proc'): Promise<AttachAnswer> {
  const env = attachEnv(pid, procRoot);
  const none = (status: AttachSummary['status'], detail: string): AttachAnswer => ({ report: null, summary: { status, detail, reportFile: env.file } });
  if (!env.attached) return none('not-attached', 'the process does not run lifeguard/register: pool owners are only known in-process (start it with --import lifeguard/register, see docs/find-a-leak.md)');
  if (env.signal === null) return none('no-report-signal', 'the process runs lifeguard/register without LIFEGUARD_REPORT_SIGNAL: start it with LIFEGUARD_REPORT_SIGNAL=SIGUSR2 and LIFEGUARD_REPORT_FILE=<path> to let the doctor name the pool and line holding each socket');
  if (env.file === null) return none('no-report-file', `the process runs lifeguard/register with LIFEGUARD_REPORT_SIGNAL=${env.signal} but no LIFEGUARD_REPORT_FILE: its report goes to its own stderr, which the doctor cannot read; set LIFEGUARD_REPORT_FILE=<path>`);
  if (!catches(pid, env.signal, procRoot)) return none('not-listening', `the process does not catch ${env.signal} (lifeguard/register did not finish attaching?): not sent, as it would end the process`);
  const file = env.file;
  const before = mtimeOf(file);
  const asked = Date.now();
  try {
    process.kill(pid, env.signal);
  } catch (error) {
    return none('failed', `could not send ${env.signal}: ${(error as Error).message}`);
  }
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline) {
    await sleep(POLL_MS);
    if (mtimeOf(file) === before) continue;
    // The attach writes a temporary file and renames it: a new mtime is a whole report.
    let report: SelfReport | null;
    try {
      report = JSON.parse(readFileSync(file, 'utf8')) as SelfReport;
    } catch {
      report = null;
    }
    if (report?.pid === pid && Date.parse(report.takenAt ?? '') >= asked - 1000) {
      return { report, summary: { status: 'joined', detail: `owners from the process's own report (${file})`, reportFile: file } };
    }
  }
  return none('no-answer', `sent ${env.signal}, but ${file} was not rewritten within ${seconds(waitMs)}`);
}

/** The doctor's report with each socket's owner, by inode, from the process's own report. */
export function joinAttachReport(report: DiagnosisReport, { report: self, summary }: AttachAnswer): AttachedReport {
  // Without a report the socket list is not touched: a spread would read the report's lazy `sockets` and
  // build 20,000 objects that the text report never prints (a tenth of a one-off run's time, and its memory).
  if (self === null) return withAttach(report, { ...summary, takenAt: null, owned: 0 });
  const owners = new Map<number, SocketOwner>();
  for (const socket of self.sockets ?? []) {
    if (socket.inode !== undefined && socket.owner != null) owners.set(socket.inode, socket.owner);
  }
  let owned = 0;
  const sockets: ReportSocket[] = report.sockets.map((socket) => {
    const owner = owners.get(socket.inode) ?? null;
    if (owner !== null) owned++;
    return { ...socket, owner };
  });
  return { ...report, sockets, attach: { ...summary, takenAt: self.takenAt ?? null, owned } };
}

/** The report with `attach` added, its other properties (getters included) carried over as they are. */
function withAttach(report: DiagnosisReport, attach: AttachSummary): AttachedReport {
  const out = Object.defineProperties({}, Object.getOwnPropertyDescriptors(report)) as DiagnosisReport;
  return Object.defineProperty(out, 'attach', { value: attach, enumerable: true }) as AttachedReport;
}

/** The owners section of the text report. */
export function renderAttach(report: AttachedReport): string {
  const { attach } = report;
  if (attach.status !== 'joined') return `Owners: ${attach.detail}.`;
  const out = [`Owners (from the process's lifeguard/register report taken at ${attach.takenAt ?? '?'}): ${attach.owned} of ${report.sockets.length} sockets held by a pool`];
  for (const socket of report.sockets) {
    if (socket.owner == null) continue;
    out.push(`  ${socket.local.address}:${socket.local.port} -> ${socket.peer} ${socket.state}: ${describeOwner(socket.owner)}`);
  }
  return out.join('\n');
}
