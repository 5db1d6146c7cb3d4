import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption, rejectUnknownKeys } from '../pool/options.js';
import { describeHolder, type InboundHolder } from './inbound.js';
import { describeOwner, seconds, type OwnerLease, type SocketOwner } from './join.js';
import { formatEndpoint } from './proc.js';
import type { Sampler, SeenSocket, Series } from './sampler.js';

/** How bad a finding is. `--fail-on` compares against this order. */
export type Severity = 'info' | 'warning' | 'critical';

export const SEVERITIES: readonly Severity[] = Object.freeze(['info', 'warning', 'critical']);

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** Codes of the doctor's findings; each has a page `docs/diagnostics/<code>.md`. Codes never change meaning. */
export const FindingCodes = Object.freeze({
  CLOSE_WAIT: 'LG_DOCTOR_CLOSE_WAIT',
  REMOTE_GROWTH: 'LG_DOCTOR_REMOTE_GROWTH',
  FD_LIMIT: 'LG_DOCTOR_FD_LIMIT',
  THREAD_GROWTH: 'LG_DOCTOR_THREAD_GROWTH',
  HANDLE_GROWTH: 'LG_DOCTOR_HANDLE_GROWTH',
  LEASE_HELD: 'LG_DOCTOR_LEASE_HELD',
} as const);

export type FindingCode = (typeof FindingCodes)[keyof typeof FindingCodes];

/** One problem the doctor found. */
export interface Finding {
  readonly code: FindingCode;
  readonly severity: Severity;
  /** One line with the numbers: what was found. */
  readonly title: string;
  /** What it means. */
  readonly explanation: string;
  /** What usually causes it. */
  readonly cause: string;
  /** What to do. */
  readonly fix: string;
  /** Path of the code's page, relative to the package root. */
  readonly docs: string;
  /** One line per affected socket, peer, pool or handle type. */
  readonly details: readonly string[];
  /** The figures behind the finding, for machines. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** When a finding is raised, and how severe it is. Every field is optional. */
export interface DoctorThresholds {
  /** CLOSE_WAIT sockets (in total) that make `LG_DOCTOR_CLOSE_WAIT` a warning; fewer, and young, is info. @default 5 */
  readonly closeWaitWarning?: number;
  /** CLOSE_WAIT sockets that make it critical. @default 50 */
  readonly closeWaitCritical?: number;
  /** A CLOSE_WAIT socket seen in that state this long makes it a warning, whatever the count. @default 30000 */
  readonly closeWaitAgeMs?: number;
  /** Rise in connections to one peer across the samples, never falling, that raises `LG_DOCTOR_REMOTE_GROWTH`. @default 5 */
  readonly remoteGrowth?: number;
  /** Open descriptors / soft limit at which `LG_DOCTOR_FD_LIMIT` is a warning. @default 0.8 */
  readonly fdWarningRatio?: number;
  /** ... and critical. @default 0.95 */
  readonly fdCriticalRatio?: number;
  /** Rise in threads across the samples, never falling, that raises `LG_DOCTOR_THREAD_GROWTH`. @default 4 */
  readonly threadGrowth?: number;
  /** Rise in active handles of one type (timers, sockets...) across the samples, never falling: `LG_DOCTOR_HANDLE_GROWTH`. @default 10 */
  readonly handleGrowth?: number;
  /** A lease held this long raises `LG_DOCTOR_LEASE_HELD`. @default each pool's `leakWarnAfterMs` (60000 when leak detection is off) */
  readonly leaseHeldMs?: number;
}

export interface ResolvedThresholds {
  readonly closeWaitWarning: number;
  readonly closeWaitCritical: number;
  readonly closeWaitAgeMs: number;
  readonly remoteGrowth: number;
  readonly fdWarningRatio: number;
  readonly fdCriticalRatio: number;
  readonly threadGrowth: number;
  readonly handleGrowth: number;
  /** undefined: per pool. */
  readonly leaseHeldMs: number | undefined;
}

const THRESHOLD_KEYS = new Set(['closeWaitWarning', 'closeWaitCritical', 'closeWaitAgeMs', 'remoteGrowth', 'fdWarningRatio', 'fdCriticalRatio', 'threadGrowth', 'handleGrowth', 'leaseHeldMs']);

export function resolveThresholds(thresholds: DoctorThresholds | undefined): ResolvedThresholds {
  const given = thresholds ?? {};
  if (typeof given !== 'object' || (given as unknown) === null) {
    throw new InvalidOptionError('thresholds', `invalid option "thresholds": expected an object, got ${describe(given)}`);
  }
  rejectUnknownKeys(given, THRESHOLD_KEYS, 'doctor thresholds');
  const source = given as Record<string, unknown>;
  const count = { integer: true, min: 1 };
  const closeWaitWarning = numberOption(source, 'closeWaitWarning', 5, count);
  const closeWaitCritical = numberOption(source, 'closeWaitCritical', Math.max(50, closeWaitWarning), count);
  if (closeWaitCritical < closeWaitWarning) {
    throw new InvalidOptionError('closeWaitCritical', `invalid option "closeWaitCritical": must be >= closeWaitWarning (${closeWaitWarning}), got number ${closeWaitCritical}`);
  }
  const fdWarningRatio = numberOption(source, 'fdWarningRatio', 0.8);
  const fdCriticalRatio = numberOption(source, 'fdCriticalRatio', Math.max(0.95, fdWarningRatio));
  if (fdWarningRatio > 1 || fdCriticalRatio > 1 || fdCriticalRatio < fdWarningRatio) {
    throw new InvalidOptionError(fdWarningRatio > 1 ? 'fdWarningRatio' : 'fdCriticalRatio', `invalid thresholds: expected 0 <= fdWarningRatio <= fdCriticalRatio <= 1, got ${fdWarningRatio} and ${fdCriticalRatio}`);
  }
  return {
    closeWaitWarning,
    closeWaitCritical,
    closeWaitAgeMs: numberOption(source, 'closeWaitAgeMs', 30_000, { min: 1 }),
    remoteGrowth: numberOption(source, 'remoteGrowth', 5, count),
    fdWarningRatio,
    fdCriticalRatio,
    threadGrowth: numberOption(source, 'threadGrowth', 4, count),
    handleGrowth: numberOption(source, 'handleGrowth', 10, count),
    leaseHeldMs: source['leaseHeldMs'] === undefined ? undefined : numberOption(source, 'leaseHeldMs', 0, { min: 1 }),
  };
}

const CATALOGUE: Readonly<Record<FindingCode, Pick<Finding, 'explanation' | 'cause' | 'fix'>>> = {
  LG_DOCTOR_CLOSE_WAIT: {
    explanation: 'The peer closed these connections, and this process never closed its side: each one keeps a file descriptor and kernel buffers until the process closes it, and will never carry another request.',
    cause: 'A response body, stream or pooled connection nobody reads or releases any more (a leaked lease), or an idle pooled socket whose pool does not notice that the server hung up.',
    fix: 'Release every lease on every path (pool.use, await using); evict idle sockets on "end"/"close" with CreateContext.invalidate; let a validator read end-of-stream; set reclaimAfterMs to take back abandoned leases.',
  },
  LG_DOCTOR_REMOTE_GROWTH: {
    explanation: 'The number of connections to one peer went up in every sample and never down: something opens connections and does not reuse or close them.',
    cause: 'A new client, agent or connection per request or per job, never closed; a pool created per request; keep-alive off so every request opens a socket.',
    fix: 'Reuse connections through one pool per remote with a max, idleTimeoutMs and maxLifetimeMs; scope per-job pools and close them when the job ends.',
  },
  LG_DOCTOR_FD_LIMIT: {
    explanation: 'Open file descriptors are close to the soft limit; past it, every accept, connect and open fails with EMFILE.',
    cause: 'Leaked sockets or files (see the CLOSE_WAIT and growth findings), or a limit too low for the workload.',
    fix: 'Fix the leak first; if the load is legitimate, raise the limit (ulimit -n, LimitNOFILE= in systemd, --ulimit in docker) and bound pools with max.',
  },
  LG_DOCTOR_THREAD_GROWTH: {
    explanation: 'The thread count went up in every sample and never down. A process that keeps starting threads dies when it cannot start one more.',
    cause: 'A native add-on, worker or resolver started per client or request and never stopped; Worker threads never terminated.',
    fix: 'Share one background worker (Lifeguard runs all housekeeping on one unref\'d timer); stop workers and close clients when done.',
  },
  LG_DOCTOR_HANDLE_GROWTH: {
    explanation: 'Active handles of one type (timers, sockets, ...) went up in every sample and never down: something starts them and never stops them.',
    cause: 'A setInterval or client per request never cleared or closed; a component whose close() does not release what it started.',
    fix: 'Clear intervals and close clients when their owner ends; share one timer for background work; check with process.getActiveResourcesInfo() before and after.',
  },
  LG_DOCTOR_LEASE_HELD: {
    explanation: 'A pool lease has been out longer than the threshold. Its resource is unavailable to everyone else; if the code forgot it, it never comes back.',
    cause: 'A release missing on an error path, a transaction or stream abandoned while something still references the lease, or a wait without a timeout while holding it.',
    fix: 'Release on every path (pool.use, await using, finally); bound waits made while holding a lease; set reclaimAfterMs to revoke abandoned leases.',
  },
};

const MAX_DETAILS = 20;

// Thousands of CLOSE_WAIT sockets must not become thousands of lines; the JSON's `sockets` has them all.
function capped(lines: readonly string[]): string[] {
  return lines.length <= MAX_DETAILS ? [...lines] : [...lines.slice(0, MAX_DETAILS), `... and ${lines.length - MAX_DETAILS} more`];
}

function finding(code: FindingCode, severity: Severity, title: string, details: readonly string[], data: Record<string, unknown>): Finding {
  return { code, severity, title, ...CATALOGUE[code], docs: `docs/diagnostics/${code}.md`, details, data };
}

/** A socket of the report: the latest sample's socket, its peer, age in state and (in-process) owner. */
export interface AnalyzedSocket extends SeenSocket {
  /** Absent (undefined): out of process, owners unknown. null: in-process, no pool owns it. */
  readonly owner?: SocketOwner | null;
}

export interface AnalysisInput {
  readonly sampler: Sampler;
  readonly sockets: readonly AnalyzedSocket[];
  readonly thresholds: ResolvedThresholds;
  /** In-process: every outstanding lease of every pool, with the pool's leak threshold. */
  readonly leases: readonly SocketOwner[] | null;
  /** In-process: the sockets of servers guarded by lifeguard/server, by inode (a CLOSE_WAIT there is inbound). */
  readonly inbound?: ReadonlyMap<number, InboundHolder>;
}

function growth(series: Series, min: number): boolean {
  return series.rising && series.change >= min;
}

function socketLine(s: AnalyzedSocket, inbound: ReadonlyMap<number, InboundHolder> | undefined): string {
  // A socket no pool owns may be one a guarded server accepted: name the server and route, not "no pool".
  const holder = s.owner === null ? inbound?.get(s.socket.inode) : undefined;
  const own = holder !== undefined ? `: ${describeHolder(holder)}` : s.owner === undefined ? '' : `: ${describeOwner(s.owner)}`;
  return `${formatEndpoint(s.socket.local)} -> ${formatEndpoint(s.socket.remote)} (inode ${s.socket.inode}) in CLOSE_WAIT, seen for ${seconds(s.inStateMs)}${own}`;
}

function closeWaitFinding(input: AnalysisInput): Finding | null {
  const t = input.thresholds;
  const closeWait = input.sockets.filter((s) => s.socket.state === 'CLOSE_WAIT').sort((a, b) => b.inStateMs - a.inStateMs);
  if (closeWait.length === 0) return null;
  const oldest = closeWait[0]?.inStateMs ?? 0;
  const severity: Severity = closeWait.length >= t.closeWaitCritical ? 'critical'
    : closeWait.length >= t.closeWaitWarning || oldest >= t.closeWaitAgeMs ? 'warning' : 'info';
  const byPeer = new Map<string, number>();
  for (const s of closeWait) byPeer.set(s.peer, (byPeer.get(s.peer) ?? 0) + 1);
  const peers = [...byPeer].sort((a, b) => b[1] - a[1]);
  const owned = closeWait.filter((s) => s.owner !== undefined && s.owner !== null).length;
  const served = input.inbound === undefined ? 0 : closeWait.filter((s) => s.owner === null && input.inbound?.has(s.socket.inode) === true).length;
  const ownership = input.leases === null ? '' : `, ${owned} owned by a Lifeguard pool${served > 0 ? `, ${served} accepted by a guarded server` : ''}`;
  return finding(FindingCodes.CLOSE_WAIT, severity,
    `${closeWait.length} socket${closeWait.length === 1 ? '' : 's'} in CLOSE_WAIT (oldest seen for ${seconds(oldest)}; ${peers.map(([p, n]) => `${n} to ${p}`).join(', ')}${ownership})`,
    // From outside, the owners are unknowable; say where to get them rather than leave the reader guessing.
    [...capped(closeWait.map((s) => socketLine(s, input.inbound))), ...(input.leases === null ? ['which pool and lease hold these sockets is only known inside the process: call diagnoseSelf() there (docs/doctor.md)'] : [])],
    { count: closeWait.length, oldestMs: oldest, byPeer: Object.fromEntries(peers), owned: input.leases === null ? null : owned, ...(input.inbound === undefined ? {} : { acceptedByGuardedServer: served }), inodes: closeWait.map((s) => s.socket.inode) });
}

function remoteGrowthFindings(input: AnalysisInput): Finding[] {
  const out: Finding[] = [];
  for (const [peer, s] of input.sampler.peerSeries()) {
    if (!growth(s, input.thresholds.remoteGrowth)) continue;
    out.push(finding(FindingCodes.REMOTE_GROWTH, 'warning',
      `connections to ${peer} grew from ${s.values[0] ?? 0} to ${s.values.at(-1) ?? 0} over ${s.values.length} samples without ever falling`,
      [`${peer}: ${s.values.join(' -> ')}`], { peer, values: s.values, change: s.change }));
  }
  return out;
}

function fdFinding(input: AnalysisInput): Finding | null {
  const latest = input.sampler.latest;
  if (latest === undefined || !Number.isFinite(latest.fds.limit) || latest.fds.limit <= 0) return null;
  const { open, limit, hardLimit } = latest.fds;
  const ratio = open / limit;
  if (ratio < input.thresholds.fdWarningRatio) return null;
  const severity: Severity = ratio >= input.thresholds.fdCriticalRatio ? 'critical' : 'warning';
  const trend = input.sampler.fdSeries();
  return finding(FindingCodes.FD_LIMIT, severity,
    `${open} of ${limit} file descriptors open (${(ratio * 100).toFixed(1)}% of the soft limit; hard limit ${hardLimit})`,
    [`open descriptors over the samples: ${trend.values.join(' -> ')}`], { open, limit, hardLimit, ratio, values: trend.values });
}

function threadFinding(input: AnalysisInput): Finding | null {
  const s = input.sampler.threadSeries();
  if (!growth(s, input.thresholds.threadGrowth)) return null;
  return finding(FindingCodes.THREAD_GROWTH, 'warning',
    `threads grew from ${s.values[0] ?? 0} to ${s.values.at(-1) ?? 0} over ${s.values.length} samples without ever falling`,
    [`threads: ${s.values.join(' -> ')}`], { values: s.values, change: s.change });
}

function handleFindings(input: AnalysisInput): Finding[] {
  const out: Finding[] = [];
  for (const [type, s] of input.sampler.handleSeries()) {
    if (!growth(s, input.thresholds.handleGrowth)) continue;
    out.push(finding(FindingCodes.HANDLE_GROWTH, 'warning',
      `active ${type} handles grew from ${s.values[0] ?? 0} to ${s.values.at(-1) ?? 0} over ${s.values.length} samples without ever falling`,
      [`${type}: ${s.values.join(' -> ')}`], { type, values: s.values, change: s.change }));
  }
  return out;
}

// One finding per pool: a leak on a hot path leaves dozens of leases from one site, which read best together.
function leaseFindings(input: AnalysisInput): Finding[] {
  if (input.leases === null) return [];
  const closeWaitOwners = new Set(input.sockets.filter((s) => s.socket.state === 'CLOSE_WAIT').map((s) => s.owner));
  const byPool = new Map<string, { owner: SocketOwner; lease: OwnerLease; limit: number; peerClosed: boolean }[]>();
  for (const owner of input.leases) {
    const lease = owner.lease;
    if (lease === null) continue;
    const limit = input.thresholds.leaseHeldMs ?? (owner.leakWarnAfterMs > 0 ? owner.leakWarnAfterMs : 60_000);
    if (lease.heldMs < limit) continue;
    const list = byPool.get(owner.pool) ?? [];
    list.push({ owner, lease, limit, peerClosed: closeWaitOwners.has(owner) });
    byPool.set(owner.pool, list);
  }
  return [...byPool].map(([pool, held]) => {
    held.sort((a, b) => b.lease.heldMs - a.lease.heldMs);
    const dead = held.filter((h) => h.peerClosed).length;
    const oldest = held[0]?.lease.heldMs ?? 0;
    const limit = held[0]?.limit ?? 0;
    const sites = new Set(held.map((h) => h.lease.site ?? '(site not captured)'));
    return finding(FindingCodes.LEASE_HELD, dead > 0 ? 'critical' : 'warning',
      `${held.length} lease${held.length === 1 ? '' : 's'} of pool "${pool}" held longer than ${seconds(limit)} (oldest ${seconds(oldest)}, from ${sites.size} acquire site${sites.size === 1 ? '' : 's'})${dead > 0 ? `; ${dead} of them hold a socket in CLOSE_WAIT: the peer is gone` : ''}`,
      capped(held.map((h) => `${describeOwner(h.owner)}${h.peerClosed ? ' [socket in CLOSE_WAIT]' : ''}`)),
      {
        pool, count: held.length, peerClosed: dead, thresholdMs: limit,
        leases: held.map((h) => ({ leaseId: h.lease.id, resourceId: h.owner.resourceId, heldMs: h.lease.heldMs, site: h.lease.site, stack: h.lease.stack, label: h.lease.label, acquiredAt: h.lease.acquiredAt, peerClosed: h.peerClosed })),
      });
  });
}

/** Every finding the samples support, most severe first. */
export function analyze(input: AnalysisInput): Finding[] {
  const findings = [
    closeWaitFinding(input),
    ...remoteGrowthFindings(input),
    fdFinding(input),
    threadFinding(input),
    ...handleFindings(input),
    ...leaseFindings(input),
  ].filter((f): f is Finding => f !== null);
  return findings.sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
}
