import { snapshotProcess, type ProcOptions, type TcpState } from '../doctor/proc.js';
import { Sampler } from '../doctor/sampler.js';
import type { Clock } from '../internal/clock.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import type { Alert, AlertMonitor } from '../metrics/alerts.js';
import type { MetricsCollector, PoolSnapshot } from '../metrics/collector.js';
import type { PoolBudgetStats } from '../pool/budget-option.js';
import type { ServerGuard } from '../server/guard.js';
import { servers } from '../server/registry.js';
import type { ConnectionInfo, ConnectionState } from '../server/types.js';

/** One pool's history, as columns (the shape uPlot draws): `t` in seconds since the epoch. */
export interface PoolSeries {
  readonly t: number[];
  readonly idle: number[];
  readonly used: number[];
  readonly pending: number[];
  /** Wait-time percentiles (ms) over the collector's percentile window. */
  readonly p50: number[];
  readonly p90: number[];
  readonly p99: number[];
}

export interface DashboardPool {
  readonly name: string;
  readonly max: number;
  readonly min: number;
  readonly size: number;
  readonly idle: number;
  readonly used: number;
  readonly pending: number;
  readonly acquired: number;
  readonly timeouts: number;
  readonly leaks: number;
  /** With the pool's `budget` option: creations waiting for a permit, and the budget's figures here and in the fleet. */
  readonly budget: PoolBudgetStats | null;
  readonly series: PoolSeries;
}

export interface DashboardLeak {
  readonly pool: string;
  readonly kind: 'held' | 'dropped' | 'reclaimed';
  /** Still out (`held` and not released) or over (dropped, reclaimed). */
  readonly open: boolean;
  readonly leaseId: number;
  readonly heldMs: number;
  readonly label: string | null;
  readonly site: string | null;
  readonly stack: string | null;
  readonly message: string;
  /** Wall-clock ms of the report. */
  readonly reportedAt: number;
}

export interface DashboardSockets {
  /** False when the kernel's tables cannot be read (not Linux, no permission); `error` says why. */
  readonly available: boolean;
  readonly error: string | null;
  readonly pid: number;
  /** Sample times (s since the epoch) and, per TCP state seen, the count at each sample. */
  readonly t: number[];
  readonly byState: Readonly<Record<string, number[]>>;
  /** The latest sample, per peer (a remote endpoint, or `inbound :port` for a listener's connections): count by state, CLOSE_WAIT first. */
  readonly remotes: readonly { readonly remote: string; readonly total: number; readonly states: Readonly<Partial<Record<TcpState, number>>> }[];
  readonly fds: { readonly open: number; readonly limit: number } | null;
  readonly threads: number | null;
}

/** One guarded server's history (`lifeguard/server`), as columns: `t` in seconds since the epoch. */
export interface ServerSeries {
  readonly t: number[];
  readonly open: number[];
  readonly active: number[];
  readonly idle: number[];
  readonly upgraded: number[];
  /** Peer half-closed (CLOSE_WAIT until ended), ended ones included until they close. */
  readonly halfClosed: number[];
}

/** A server guarded by `lifeguard/server`, shown next to the pools. */
export interface DashboardServer {
  readonly name: string;
  /** Closed with its server (it comes back if the server listens again). */
  readonly closed: boolean;
  readonly ready: boolean;
  readonly shuttingDown: boolean;
  readonly open: number;
  readonly connections: Readonly<Record<ConnectionState, number>>;
  readonly halfClosed: number;
  readonly accepted: number;
  readonly reaped: { readonly halfClosed: number; readonly idle: number; readonly destroyed: number };
  readonly lastShutdownMs: number | null;
  /** The oldest open connection, with its route (`owner`), or null. */
  readonly oldest: ConnectionInfo | null;
  /** Up to 20 connections: half-closed ones first, then the oldest. */
  readonly sockets: readonly ConnectionInfo[];
  readonly series: ServerSeries;
}

/** Everything the page shows, as served by `/api/state` and pushed on `/events`. */
export interface DashboardState {
  /** Wall-clock ms. */
  readonly generatedAt: number;
  readonly sampleIntervalMs: number;
  readonly pools: readonly DashboardPool[];
  /** Servers guarded by `lifeguard/server` in this process (the dashboard's own process only). */
  readonly servers: readonly DashboardServer[];
  readonly sockets: DashboardSockets;
  readonly leaks: readonly DashboardLeak[];
  readonly alerts: readonly Alert[];
}

export interface SamplerSettings {
  readonly clock: Clock;
  readonly collector: MetricsCollector;
  readonly alerts: AlertMonitor | null;
  readonly sampleIntervalMs: number;
  readonly historyLength: number;
  /** Read the kernel's socket table of `pid`. */
  readonly process: boolean;
  readonly pid: number;
  readonly proc: ProcOptions | undefined;
  /** Called after each sample (read the new state with `state()`). */
  readonly onSample: () => void;
}

function trim(columns: readonly number[][], length: number): void {
  for (const column of columns) if (column.length > length) column.splice(0, column.length - length);
}

/**
 * Samples pools and sockets on the shared housekeeping timer and keeps a bounded history, so a page
 * opened late still shows the last `historyLength` samples.
 */
export class DashboardSampler {
  readonly #s: SamplerSettings;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  readonly #pools = new Map<string, PoolSeries>();
  // Weak: a dashboard that runs for days must not keep every server guard it ever showed alive.
  readonly #servers = new WeakMap<ServerGuard, ServerSeries>();
  readonly #socketT: number[] = [];
  readonly #byState: Record<string, number[]> = {};
  #remotes: DashboardSockets['remotes'] = [];
  #fds: DashboardSockets['fds'] = null;
  #threads: number | null = null;
  #socketsError: string | null = null;
  #reading: Promise<void> | null = null;
  readonly #doctor = new Sampler(1);
  #closed = false;

  constructor(settings: SamplerSettings) {
    this.#s = settings;
    this.#housekeeper = Housekeeper.for(settings.clock);
    this.#task = { periodMs: settings.sampleIntervalMs, run: () => { this.sample(); } };
    this.#housekeeper.register(this.#task);
    if (!settings.process) this.#socketsError = 'socket sampling is off';
    this.sample();
  }

  /** Takes one sample of the pools now, and starts one read of the socket table. */
  sample(): void {
    if (this.#closed) return;
    const now = Date.now() / 1000;
    const snapshot = this.#s.collector.snapshot();
    const open = new Set<string>();
    for (const pool of snapshot) {
      open.add(pool.name);
      let series = this.#pools.get(pool.name);
      if (series === undefined) {
        series = { t: [], idle: [], used: [], pending: [], p50: [], p90: [], p99: [] };
        this.#pools.set(pool.name, series);
      }
      // Two pools with one name are drawn as one, like the exporters do.
      if (series.t.at(-1) === now) continue;
      const same = snapshot.filter((p) => p.name === pool.name);
      const sum = (f: (p: PoolSnapshot) => number): number => same.reduce((total, p) => total + f(p), 0);
      series.t.push(now);
      series.idle.push(sum((p) => p.stats.idle));
      series.used.push(sum((p) => p.stats.inUse));
      series.pending.push(sum((p) => p.stats.pending));
      series.p50.push(Math.max(...same.map((p) => p.wait.p50)));
      series.p90.push(Math.max(...same.map((p) => p.wait.p90)));
      series.p99.push(Math.max(...same.map((p) => p.wait.p99)));
      trim(Object.values(series), this.#s.historyLength);
    }
    for (const name of this.#pools.keys()) if (!open.has(name)) this.#pools.delete(name);
    this.#sampleServers(now);
    if (this.#s.process && this.#reading === null) this.#reading = this.#readSockets(now).finally(() => { this.#reading = null; });
    else this.#s.onSample();
  }

  /** Servers are this process's: another process's (the CLI's `--pid`) are not visible in-process. */
  #sampleServers(now: number): void {
    for (const guard of this.#guards()) {
      let series = this.#servers.get(guard);
      if (series === undefined) {
        series = { t: [], open: [], active: [], idle: [], upgraded: [], halfClosed: [] };
        this.#servers.set(guard, series);
      }
      if (series.t.at(-1) === now) continue;
      const stats = guard.stats();
      series.t.push(now);
      series.open.push(stats.connections.open);
      series.active.push(stats.connections.active);
      series.idle.push(stats.connections.idle);
      series.upgraded.push(stats.connections.upgraded);
      series.halfClosed.push(guard.connections().filter((c) => c.halfClosedMs !== null).length);
      trim(Object.values(series), this.#s.historyLength);
    }
  }

  #guards(): ServerGuard[] {
    return this.#s.pid === process.pid ? servers() : [];
  }

  #serverStates(): DashboardServer[] {
    const out: DashboardServer[] = [];
    for (const guard of this.#guards()) {
      const series = this.#servers.get(guard);
      if (series === undefined) continue; // not sampled yet
      const stats = guard.stats();
      const connections = guard.connections();
      const halfClosed = connections.filter((c) => c.halfClosedMs !== null);
      const rest = connections.filter((c) => c.halfClosedMs === null);
      out.push({
        name: guard.name, closed: guard.closed, ready: stats.ready, shuttingDown: stats.shuttingDown, open: stats.open,
        connections: stats.connections, halfClosed: halfClosed.length, accepted: stats.accepted, reaped: stats.reaped,
        lastShutdownMs: stats.lastShutdownMs, oldest: connections[0] ?? null,
        sockets: [...halfClosed.sort((a, b) => (b.halfClosedMs ?? 0) - (a.halfClosedMs ?? 0)), ...rest].slice(0, 20),
        series,
      });
    }
    return out;
  }

  /** The current state, as the page gets it. */
  state(): DashboardState {
    const snapshot = this.#s.collector.snapshot();
    const pools: DashboardPool[] = [];
    for (const [name, series] of this.#pools) {
      const same = snapshot.filter((p) => p.name === name);
      if (same.length === 0) continue;
      const sum = (f: (p: PoolSnapshot) => number): number => same.reduce((total, p) => total + f(p), 0);
      pools.push({
        name, series,
        max: sum((p) => p.stats.max), min: sum((p) => p.stats.min), size: sum((p) => p.stats.size),
        idle: sum((p) => p.stats.idle), used: sum((p) => p.stats.inUse), pending: sum((p) => p.stats.pending),
        acquired: sum((p) => p.stats.acquired), timeouts: sum((p) => p.stats.timeouts), leaks: sum((p) => p.stats.leaks),
        budget: budgetOf(same),
      });
    }
    const leaks: DashboardLeak[] = [];
    for (const pool of snapshot) {
      for (const [open, records] of [[true, pool.openLeaks], [false, pool.recentLeaks]] as const) {
        for (const { report, message, reportedAt } of records) {
          leaks.push({
            pool: pool.name, kind: report.kind, open, leaseId: report.id, heldMs: Math.round(report.heldMs), label: report.label ?? null,
            site: report.site, stack: report.stack, message, reportedAt: reportedAt.getTime(),
          });
        }
      }
    }
    return {
      generatedAt: Date.now(),
      sampleIntervalMs: this.#s.sampleIntervalMs,
      pools,
      servers: this.#serverStates(),
      sockets: {
        available: this.#socketsError === null, error: this.#socketsError, pid: this.#s.pid,
        t: this.#socketT, byState: this.#byState, remotes: this.#remotes, fds: this.#fds, threads: this.#threads,
      },
      leaks: leaks.sort((a, b) => Number(b.open) - Number(a.open) || a.reportedAt - b.reportedAt),
      alerts: this.#s.alerts?.active() ?? [],
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#housekeeper.unregister(this.#task);
  }

  /** Resolves once no read of the socket table is in flight. */
  async idle(): Promise<void> {
    await this.#reading;
  }

  async #readSockets(now: number): Promise<void> {
    try {
      const snapshot = await snapshotProcess(this.#s.pid, this.#s.proc);
      if (this.#closed) return;
      this.#socketsError = null;
      this.#fds = { open: snapshot.fds.open, limit: snapshot.fds.limit };
      this.#threads = snapshot.threads;
      // The doctor's grouping: inbound connections by the listener they came in on, IPv4-mapped as IPv4.
      this.#doctor.add({ ...snapshot, handles: null });
      const states = new Map<string, number>();
      const remotes = new Map<string, Partial<Record<TcpState, number>>>();
      for (const { peer, state, count } of this.#doctor.groups()) {
        if (state === 'LISTEN' || count === 0) continue; // a listener has no remote
        states.set(state, (states.get(state) ?? 0) + count);
        const counts = remotes.get(peer) ?? {};
        counts[state] = count;
        remotes.set(peer, counts);
      }
      // Every state column stays as long as the time column: a state not seen now counts 0.
      const length = this.#socketT.push(now);
      for (const state of states.keys()) this.#byState[state] ??= new Array<number>(length - 1).fill(0);
      for (const [state, column] of Object.entries(this.#byState)) column.push(states.get(state) ?? 0);
      trim([this.#socketT, ...Object.values(this.#byState)], this.#s.historyLength);
      for (const [state, column] of Object.entries(this.#byState)) {
        // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- keys are TCP state names
        if (column.every((n) => n === 0)) delete this.#byState[state];
      }
      this.#remotes = [...remotes].map(([remote, counts]) => ({ remote, states: counts, total: Object.values(counts).reduce((a, b) => a + b, 0) }))
        .sort((a, b) => (b.states.CLOSE_WAIT ?? 0) - (a.states.CLOSE_WAIT ?? 0) || b.total - a.total || a.remote.localeCompare(b.remote))
        .slice(0, 50);
    } catch (error) {
      this.#socketsError = error instanceof Error ? error.message : String(error);
    }
    if (!this.#closed) this.#s.onSample();
  }
}

/** The budget line of pools that share a name: the budget's figures from the first, creations waiting summed. */
function budgetOf(same: readonly PoolSnapshot[]): PoolBudgetStats | null {
  let first: PoolBudgetStats | null = null;
  let creates = 0;
  for (const p of same) {
    const b = p.stats.budget;
    if (b === undefined) continue;
    first ??= b;
    creates += b.createsWaiting;
  }
  return first === null ? null : { ...first, createsWaiting: creates };
}
