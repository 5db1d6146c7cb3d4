/**
 * The host-wide view (`lifeguard doctor --all`): every process this user may examine, ranked by CLOSE_WAIT
 * sockets, descriptors against the limit and growth across samples. The descriptor links of each process
 * are read once per sample, each network namespace's tables once, and only rows some process owns are
 * decoded.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FindingCodes, resolveThresholds, severityRank, type DoctorThresholds, type FindingCode, type ResolvedThresholds, type Severity } from './findings.js';
import { formatEndpoint, normalizeAddress, type TcpSocket, type TcpState } from './proc.js';
import { scanFds, scanTable } from './scan.js';

export interface HostProcess {
  readonly pid: number;
  /** `/proc/PID/cmdline` with spaces for NULs (a kernel thread's is empty: its `comm` in brackets). */
  readonly command: string;
  readonly sockets: number;
  readonly byState: Readonly<Partial<Record<TcpState, number>>>;
  readonly closeWait: number;
  /** CLOSE_WAIT sockets by remote endpoint, most first (at most 5). */
  readonly closeWaitRemotes: readonly { readonly remote: string; readonly count: number }[];
  readonly fds: number;
  /** Soft limit; null when unlimited. */
  readonly fdLimit: number | null;
  /** fds / fdLimit (0 when unlimited). */
  readonly fdRatio: number;
  /** Open descriptors in each sample (oldest first) and last minus first. */
  readonly fdTrend: readonly number[];
  readonly fdGrowth: number;
  readonly socketTrend: readonly number[];
  readonly socketGrowth: number;
  /** What the doctor finds in this process from the host-wide figures, most severe first (see {@link hostFindings}). */
  readonly findings: readonly HostFinding[];
}

/** A finding about one process of the host: the code and severity `--pid` would give for the same figures. */
export interface HostFinding {
  readonly code: FindingCode;
  readonly severity: Severity;
  readonly title: string;
}

export interface HostReport {
  readonly takenAt: string;
  readonly samples: number;
  /** Processes examined, ranked worst first: most severe finding, CLOSE_WAIT, descriptor use against the limit, growth (see {@link rank}). */
  readonly processes: readonly HostProcess[];
  /** Processes that could not be examined (another user's, without the right to read their descriptors). */
  readonly skipped: number;
  readonly source: string;
}

export interface HostOptions {
  /** When findings are raised: the CLOSE_WAIT counts and descriptor ratios of `--pid`'s thresholds. */
  readonly thresholds?: DoctorThresholds;
  readonly samples?: number;
  readonly intervalMs?: number;
  readonly procRoot?: string;
  readonly signal?: AbortSignal;
}

interface Seen {
  command: string;
  fds: number[];
  sockets: number[];
  limit: number;
  states: Map<TcpState, number>;
  remotes: Map<string, number>;
}

async function text(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

/** One pass over the host; `seen` gathers per pid, `index` is the sample's position. */
async function sampleHost(root: string, seen: Map<number, Seen>, index: number, samples: number): Promise<number> {
  const pids = (await readdir(root)).filter((name) => /^\d+$/.test(name)).map(Number);
  const owner = new Map<number, number>(); // socket inode -> pid
  const namespaces = new Map<string, number>(); // net namespace -> a pid in it
  let skipped = 0;
  for (const pid of pids) {
    if (pid === process.pid) continue;
    const dir = path.join(root, String(pid));
    let fds: { open: number; inodes: Map<number, number> };
    try {
      fds = await scanFds(path.join(dir, 'fd'), (error) => error);
    } catch {
      skipped++;
      continue;
    }
    let entry = seen.get(pid);
    if (entry === undefined) {
      const cmdline = (await text(path.join(dir, 'cmdline'))) ?? '';
      const comm = ((await text(path.join(dir, 'comm'))) ?? '').trim();
      entry = { command: cmdline.replace(/\0+$/, '').replace(/\0/g, ' ') || `[${comm}]`, fds: new Array<number>(samples).fill(0), sockets: new Array<number>(samples).fill(0), limit: Infinity, states: new Map(), remotes: new Map() };
      seen.set(pid, entry);
    }
    entry.fds[index] = fds.open;
    const limits = await text(path.join(dir, 'limits'));
    const match = limits === null ? null : /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    entry.limit = match?.[1] === undefined || match[1] === 'unlimited' ? Infinity : Number(match[1]);
    for (const inode of fds.inodes.keys()) owner.set(inode, pid);
    if (fds.inodes.size > 0) {
      const ns = await readlink(path.join(dir, 'ns', 'net')).catch(() => `pid ${pid}`);
      if (!namespaces.has(ns)) namespaces.set(ns, pid);
    }
  }
  // The latest sample's states and remotes only.
  if (index === samples - 1) for (const entry of seen.values()) { entry.states.clear(); entry.remotes.clear(); }
  const last = index === samples - 1;
  // The kernel prints a table a page at a time and resumes by position, so under churn a socket can be
  // listed twice (see uniqueSockets): count each inode once, by its latest row.
  const counted = new Map<number, TcpSocket>();
  const tally = (entry: Seen, socket: TcpSocket, by: 1 | -1): void => {
    entry.sockets[index] = (entry.sockets[index] ?? 0) + by;
    if (!last) return;
    entry.states.set(socket.state, (entry.states.get(socket.state) ?? 0) + by);
    if (entry.states.get(socket.state) === 0) entry.states.delete(socket.state);
    if (socket.state === 'CLOSE_WAIT') {
      const remote = formatEndpoint({ address: normalizeAddress(socket.remote.address), port: socket.remote.port });
      const n = (entry.remotes.get(remote) ?? 0) + by;
      if (n === 0) entry.remotes.delete(remote);
      else entry.remotes.set(remote, n);
    }
  };
  for (const pid of namespaces.values()) {
    for (const table of ['tcp', 'tcp6']) {
      try {
        await scanTable(path.join(root, String(pid), 'net', table), true, (inode) => owner.has(inode), (socket) => {
          const entry = seen.get(owner.get(socket.inode) ?? 0);
          if (entry === undefined) return;
          const before = counted.get(socket.inode);
          if (before !== undefined) tally(entry, before, -1);
          counted.set(socket.inode, socket);
          tally(entry, socket, 1);
        });
      } catch {
        // The process exited, or no tcp6: its sockets are gone with it.
      }
    }
  }
  return skipped;
}

/** Samples every process of the host `samples` times, `intervalMs` apart, and ranks them. */
export async function surveyHost(options: HostOptions = {}): Promise<HostReport> {
  const samples = options.samples ?? 1;
  const intervalMs = options.intervalMs ?? 1000;
  const root = options.procRoot ?? '/proc';
  const thresholds = resolveThresholds(options.thresholds);
  const seen = new Map<number, Seen>();
  let skipped = 0;
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(intervalMs, undefined, options.signal === undefined ? {} : { signal: options.signal });
    skipped = await sampleHost(root, seen, i, samples);
  }
  const processes: HostProcess[] = [];
  for (const [pid, entry] of seen) {
    const last = entry.fds[samples - 1] ?? 0;
    if (last === 0) continue; // gone before the last sample
    const closeWait = entry.states.get('CLOSE_WAIT') ?? 0;
    const firstFd = entry.fds.find((n) => n > 0) ?? last;
    const firstSockets = entry.sockets[0] ?? 0;
    const figures = {
      pid,
      command: entry.command,
      sockets: entry.sockets[samples - 1] ?? 0,
      byState: Object.fromEntries(entry.states),
      closeWait,
      closeWaitRemotes: [...entry.remotes].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([remote, count]) => ({ remote, count })),
      fds: last,
      fdLimit: Number.isFinite(entry.limit) ? entry.limit : null,
      fdRatio: Number.isFinite(entry.limit) && entry.limit > 0 ? last / entry.limit : 0,
      fdTrend: entry.fds,
      fdGrowth: last - firstFd,
      socketTrend: entry.sockets,
      socketGrowth: (entry.sockets[samples - 1] ?? 0) - firstSockets,
    };
    processes.push({ ...figures, findings: hostFindings(figures, thresholds) });
  }
  processes.sort(rank);
  return { takenAt: new Date().toISOString(), samples, processes, skipped, source: `${root}/*/fd, ${root}/*/limits and each network namespace's ${root}/PID/net/tcp,tcp6` };
}

/**
 * The findings `--pid` would raise from the figures the host-wide pass has: CLOSE_WAIT sockets by count
 * (their ages are not followed host-wide: `closeWaitAgeMs` does not apply) and descriptors against the
 * soft limit. Growth per remote, threads and handles need `--pid`.
 */
export function hostFindings(p: Omit<HostProcess, 'findings'>, t: ResolvedThresholds): HostFinding[] {
  const out: HostFinding[] = [];
  if (p.closeWait > 0) {
    const remotes = p.closeWaitRemotes.map((r) => `${r.count} to ${r.remote}`).join(', ');
    out.push({
      code: FindingCodes.CLOSE_WAIT,
      severity: p.closeWait >= t.closeWaitCritical ? 'critical' : p.closeWait >= t.closeWaitWarning ? 'warning' : 'info',
      title: `${p.closeWait} socket${p.closeWait === 1 ? '' : 's'} in CLOSE_WAIT${remotes === '' ? '' : ` (${remotes})`}`,
    });
  }
  if (p.fdLimit !== null && p.fdRatio >= t.fdWarningRatio) {
    out.push({
      code: FindingCodes.FD_LIMIT,
      severity: p.fdRatio >= t.fdCriticalRatio ? 'critical' : 'warning',
      title: `${p.fds} of ${p.fdLimit} file descriptors open (${(p.fdRatio * 100).toFixed(1)}% of the soft limit)`,
    });
  }
  return out.sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
}

function worstSeverity(p: HostProcess): number {
  let worst = -1;
  for (const f of p.findings) worst = Math.max(worst, severityRank(f.severity));
  return worst;
}

/**
 * Worst first: the most severe finding (a process at 99% of its descriptors before one with a single
 * CLOSE_WAIT socket), then CLOSE_WAIT sockets, then descriptors against the limit (to the percent), then growth.
 */
export function rank(a: HostProcess, b: HostProcess): number {
  return worstSeverity(b) - worstSeverity(a)
    || b.closeWait - a.closeWait
    || Math.floor(b.fdRatio * 100) - Math.floor(a.fdRatio * 100)
    || (b.fdGrowth + b.socketGrowth) - (a.fdGrowth + a.socketGrowth)
    || b.sockets - a.sockets
    || a.pid - b.pid;
}

/**
 * A command line cut to `width` characters for the table. Cutting the tail lost what names a process
 * (`node /long/checkout/path/dist/app.js` became `node /long/checkout/pa`), so paths keep only their last
 * part, and what is still too long loses its middle, never its end.
 */
export function shortCommand(command: string, width: number): string {
  if (command.length <= width) return command;
  const short = command.split(' ').map((word) => {
    const slash = word.lastIndexOf('/');
    return slash > 0 && slash < word.length - 1 ? `…${word.slice(slash)}` : word;
  }).join(' ');
  if (short.length <= width) return short;
  const head = Math.ceil((width - 1) / 2);
  return `${short.slice(0, head)}…${short.slice(short.length - (width - 1 - head))}`;
}

const SEVERITY_ORDER: readonly Severity[] = ['critical', 'warning', 'info'];

/** The ranking as text: the worst named first, the findings, then a table of the top `top`. */
export function renderHost(report: HostReport, top = 15): string {
  const out: string[] = [];
  out.push(`lifeguard doctor --all: ${report.processes.length} processes at ${report.takenAt}, ${report.samples} sample${report.samples === 1 ? '' : 's'}${report.skipped > 0 ? ` (${report.skipped} not examined: permission)` : ''}`);
  const worst = report.processes[0];
  if (worst !== undefined) {
    const remotes = worst.closeWaitRemotes.map((r) => `${r.count} to ${r.remote}`).join(', ');
    out.push(`Worst: pid ${worst.pid} (${worst.command.slice(0, 120)}): ${worst.closeWait} CLOSE_WAIT${remotes === '' ? '' : ` (${remotes})`}, ${worst.fds} of ${worst.fdLimit ?? 'unlimited'} descriptors, ${worst.sockets} sockets`);
  }
  const found = report.processes.flatMap((p) => p.findings.map((f) => ({ p, f })));
  if (found.length > 0) {
    const counts = SEVERITY_ORDER.map((sev) => [sev, found.filter((x) => x.f.severity === sev).length] as const).filter(([, n]) => n > 0);
    out.push(`Findings: ${counts.map(([sev, n]) => `${n} ${sev}`).join(', ')}`);
    // The warnings and worse of the processes listed below; the JSON has every finding of every process.
    const listed = new Set(report.processes.slice(0, top));
    const serious = found.filter((x) => x.f.severity !== 'info').sort((a, b) => severityRank(b.f.severity) - severityRank(a.f.severity));
    for (const { p, f } of serious.filter((x) => listed.has(x.p))) {
      out.push(`  ${f.severity.toUpperCase()} ${f.code}: pid ${p.pid} (${shortCommand(p.command, 60)}): ${f.title}`);
    }
    const unlisted = serious.filter((x) => !listed.has(x.p)).length;
    if (unlisted > 0) out.push(`  ... and ${unlisted} more in processes past the top ${top} (--top, --json)`);
  } else out.push('No findings.');
  out.push('');
  out.push(['pid'.padStart(8), 'CLOSE_WAIT'.padStart(11), 'sockets'.padStart(8), 'fds/limit'.padStart(14), 'use'.padStart(6), 'growth'.padStart(7), '  command (CLOSE_WAIT remotes)'].join(''));
  for (const p of report.processes.slice(0, top)) {
    const remotes = p.closeWaitRemotes.map((r) => `${r.count}x ${r.remote}`).join(', ');
    out.push([String(p.pid).padStart(8), String(p.closeWait).padStart(11), String(p.sockets).padStart(8), `${p.fds}/${p.fdLimit ?? 'inf'}`.padStart(14), `${(p.fdRatio * 100).toFixed(0)}%`.padStart(6), `${p.fdGrowth + p.socketGrowth >= 0 ? '+' : ''}${p.fdGrowth + p.socketGrowth}`.padStart(7), `  ${shortCommand(p.command, 60)}${remotes === '' ? '' : ` (${remotes})`}`].join(''));
  }
  out.push('');
  out.push(`Source: ${report.source}`);
  return out.join('\n');
}
