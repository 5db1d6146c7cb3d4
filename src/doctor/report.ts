import { analyze, type AnalyzedSocket, type Finding, type ResolvedThresholds } from './findings.js';
import { collectInbound, holdersByInode, renderInbound, type InboundServer } from './inbound.js';
import { ownerOf, seconds, type PoolResources, type SocketOwner } from './join.js';
import type { Endpoint, TcpState } from './proc.js';
import type { Sampler, SocketGroup } from './sampler.js';

/** A socket in a report (JSON-ready). */
export interface ReportSocket {
  readonly inode: number;
  readonly family: 4 | 6;
  readonly state: TcpState;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  /** Group it is counted in: a remote endpoint, `inbound :PORT` or `listen ADDRESS:PORT`. */
  readonly peer: string;
  readonly txQueue: number;
  readonly rxQueue: number;
  /** ISO time the doctor first saw the socket in this state. */
  readonly firstSeenAt: string;
  /** Time seen in this state, by sampling: a lower bound. */
  readonly inStateMs: number;
  /** In-process only: the pool resource and lease that own it, or null when no pool does. Absent out of process. */
  readonly owner?: SocketOwner | null;
}

/** A count over the samples: the latest value and every value, oldest first. */
export interface Trend {
  readonly count: number;
  readonly trend: readonly number[];
}

/** What `diagnose()` returns and `lifeguard doctor --json` prints. */
export interface DiagnosisReport {
  readonly pid: number;
  /** True for `diagnoseSelf()`: sockets joined to pools and leases, handles counted. */
  readonly inProcess: boolean;
  /** ISO time of the latest sample. */
  readonly takenAt: string;
  /** Samples the trends cover, and the time from the first to the last. */
  readonly samples: number;
  readonly spanMs: number;
  /** The process's TCP sockets in the latest sample: CLOSE_WAIT first, oldest first. */
  readonly sockets: readonly ReportSocket[];
  /** Socket counts by peer and state, with their trend over the samples. */
  readonly groups: readonly SocketGroup[];
  /** Open descriptors against the soft and hard limit (null: unlimited). */
  readonly fds: Trend & { readonly limit: number | null; readonly hardLimit: number | null };
  readonly threads: Trend;
  /** In-process only: `process.getActiveResourcesInfo()` by type; null out of process. */
  readonly handles: Readonly<Record<string, Trend>> | null;
  /** Most severe first. */
  readonly findings: readonly Finding[];
  /**
   * In-process only: the servers guarded by `lifeguard/server`, each socket with its route, age and the
   * kernel's state of it. Absent out of process.
   */
  readonly servers?: readonly InboundServer[];
  /** What the sample read (the kernel's files), when known. */
  readonly source?: string;
  /** How socket ages were measured. */
  readonly note: string;
}

const STATE_ORDER: Partial<Record<TcpState, number>> = { CLOSE_WAIT: 0, LAST_ACK: 1, FIN_WAIT1: 2, FIN_WAIT2: 3, ESTABLISHED: 4, LISTEN: 9 };

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

/** Builds the report from a sampler's window; `resources` (in-process) adds owners and lease findings. */
export function buildReport(sampler: Sampler, thresholds: ResolvedThresholds, resources: PoolResources | null): DiagnosisReport {
  const latest = sampler.latest;
  const first = sampler.samples[0];
  if (latest === undefined || first === undefined) throw new RangeError('a report needs at least one sample');
  // Out of process the sampler's own objects serve (no owner): a second object per socket was 20,000 more per sample.
  const sockets: AnalyzedSocket[] = resources === null
    ? sampler.sockets()
    : sampler.sockets().map((s) => ({ socket: s.socket, peer: s.peer, firstSeenAt: s.firstSeenAt, inStateMs: s.inStateMs, owner: ownerOf(s.socket, resources) }));
  const servers = resources === null ? null : collectInbound(latest.sockets);
  const findings = analyze({ sampler, sockets, thresholds, leases: resources === null ? null : resources.all, ...(servers === null ? {} : { inbound: holdersByInode(servers) }) });
  const handleSeries = sampler.handleSeries();
  const report = {
    pid: latest.pid,
    inProcess: resources !== null,
    takenAt: new Date(latest.takenAt).toISOString(),
    samples: sampler.samples.length,
    spanMs: latest.takenAt - first.takenAt,
    sockets: [] as readonly ReportSocket[],
    groups: sampler.groups(),
    fds: { count: latest.fds.open, trend: sampler.fdSeries().values, limit: finite(latest.fds.limit), hardLimit: finite(latest.fds.hardLimit) },
    threads: { count: latest.threads, trend: sampler.threadSeries().values },
    handles: latest.handles === null ? null : Object.fromEntries([...handleSeries].map(([type, s]) => [type, { count: s.values.at(-1) ?? 0, trend: s.values }])),
    findings,
    ...(servers === null ? {} : { servers }),
    ...(latest.source === undefined ? {} : { source: latest.source }),
    note: `socket ages are measured by sampling: the time since the doctor first saw a socket in its state (${sampler.samples.length} sample${sampler.samples.length === 1 ? '' : 's'} over ${seconds(latest.takenAt - first.takenAt)}), a lower bound of the real age`,
  };
  // The socket list is built when first read (JSON.stringify reads it): the text report needs only the
  // groups, and 20,000 report objects were a third of a sample's cost.
  let list: readonly ReportSocket[] | null = null;
  Object.defineProperty(report, 'sockets', {
    enumerable: true,
    configurable: true,
    get: () => (list ??= socketList(sockets)),
  });
  return report;
}

function socketList(sockets: AnalyzedSocket[]): ReportSocket[] {
  // Most sockets were first seen at one of a few sample times: one ISO string each.
  const iso = new Map<number, string>();
  const isoOf = (ms: number): string => {
    let text = iso.get(ms);
    if (text === undefined) {
      text = new Date(ms).toISOString();
      iso.set(ms, text);
    }
    return text;
  };
  sockets.sort((a, b) => (STATE_ORDER[a.socket.state] ?? 5) - (STATE_ORDER[b.socket.state] ?? 5) || b.inStateMs - a.inStateMs || a.socket.inode - b.socket.inode);
  return sockets.map((s) => ({
    inode: s.socket.inode,
    family: s.socket.family,
    state: s.socket.state,
    local: s.socket.local,
    remote: s.socket.remote,
    peer: s.peer,
    txQueue: s.socket.txQueue,
    rxQueue: s.socket.rxQueue,
    firstSeenAt: isoOf(s.firstSeenAt),
    inStateMs: s.inStateMs,
    ...(s.owner === undefined ? {} : { owner: s.owner }),
  }));
}

/** Sockets by state in the latest sample, from the groups (no need to build the socket list). */
function stateCounts(report: DiagnosisReport): Map<string, number> {
  const states = new Map<string, number>();
  for (const g of report.groups) if (g.count > 0) states.set(g.state, (states.get(g.state) ?? 0) + g.count);
  return states;
}

function total(states: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const count of states.values()) n += count;
  return n;
}

function trendText(values: readonly number[]): string {
  if (values.length < 2) return '';
  const first = values[0] ?? 0;
  const last = values.at(-1) ?? 0;
  const arrow = last > first ? 'up' : last < first ? 'down' : 'flat';
  return ` (${values.join(' -> ')}, ${arrow})`;
}

/** The report as text for a terminal or a log. */
export function renderText(report: DiagnosisReport): string {
  const out: string[] = [];
  out.push(`lifeguard doctor: process ${report.pid}${report.inProcess ? ' (in-process)' : ''} at ${report.takenAt}, ${report.samples} sample${report.samples === 1 ? '' : 's'} over ${seconds(report.spanMs)}`);
  out.push('');
  if (report.findings.length === 0) out.push('No findings.');
  else out.push(`Findings (${report.findings.length}):`);
  const explained = new Set<string>();
  for (const f of report.findings) {
    out.push(`  ${f.severity.toUpperCase()} ${f.code}: ${f.title}`);
    for (const line of f.details) out.push(`    - ${line}`);
    // Several findings of one code (one per peer, per pool) share their explanation: say it once.
    if (explained.has(f.code)) continue;
    explained.add(f.code);
    out.push(`    What it means: ${f.explanation}`);
    out.push(`    Likely cause: ${f.cause}`);
    out.push(`    Fix: ${f.fix}`);
    out.push(`    See ${f.docs}`);
  }
  out.push('');
  out.push(`TCP sockets: ${total(stateCounts(report))}, by peer and state${report.samples > 1 ? ' (counts over the samples)' : ''}:`);
  if (report.groups.length === 0) out.push('  (none)');
  const width = Math.max(0, ...report.groups.map((g) => g.peer.length));
  for (const g of report.groups) out.push(`  ${g.peer.padEnd(width)}  ${g.state.padEnd(11)} ${g.count}${trendText(g.trend)}`);
  out.push('');
  const inbound = renderInbound(report.servers ?? []);
  if (inbound.length > 0) out.push(...inbound, '');
  const limit = report.fds.limit === null ? 'unlimited' : String(report.fds.limit);
  const pct = report.fds.limit === null ? '' : `, ${((report.fds.count / report.fds.limit) * 100).toFixed(1)}%`;
  out.push(`File descriptors: ${report.fds.count} of ${limit}${pct}${trendText(report.fds.trend)}`);
  out.push(`Threads: ${report.threads.count}${trendText(report.threads.trend)}`);
  if (report.handles !== null) {
    out.push('Active handles (process.getActiveResourcesInfo):');
    for (const [type, t] of Object.entries(report.handles)) out.push(`  ${type}: ${t.count}${trendText(t.trend)}`);
  }
  out.push('');
  if (report.source !== undefined) out.push(`Source: ${report.source}`);
  out.push(`Note: ${report.note}.`);
  return out.join('\n');
}

/** One line per report, for `--watch` when the output is not a terminal. */
export function renderLine(report: DiagnosisReport): string {
  const states = stateCounts(report);
  const sockets = [...states].map(([state, n]) => `${state}=${n}`).join(' ');
  const findings = report.findings.map((f) => `${f.code}(${f.severity})`).join(' ');
  const limit = report.fds.limit === null ? 'unlimited' : String(report.fds.limit);
  return `${report.takenAt} pid=${report.pid} sockets=${total(states)}${sockets === '' ? '' : ` ${sockets}`} fds=${report.fds.count}/${limit} threads=${report.threads.count} findings=${findings === '' ? 'none' : findings}`;
}
