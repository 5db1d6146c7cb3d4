import type { Clock } from '../internal/clock.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import { DoctorError, DoctorErrorCodes } from '../doctor/errors.js';
import { Sampler } from '../doctor/sampler.js';
import { snapshotProcess, type ProcessSnapshot, type ProcOptions } from '../doctor/proc.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption } from '../pool/options.js';
import { clockOption, optionsRecord, type MetricsCollector, type PoolSnapshot } from './collector.js';
import { Emitting } from './emitting.js';
import { GrowthTracker } from './growth.js';
import { useCollector } from './optional.js';

/** Stable codes of the alerts, each documented in docs/diagnostics/<CODE>.md. */
export const AlertCodes = Object.freeze({
  POOL_SATURATED: 'LG_ALERT_POOL_SATURATED',
  POOL_PENDING: 'LG_ALERT_POOL_PENDING',
  ACQUIRE_TIMEOUT: 'LG_ALERT_ACQUIRE_TIMEOUT',
  LEAK: 'LG_ALERT_LEAK',
  CLOSE_WAIT: 'LG_ALERT_CLOSE_WAIT',
  FDS_NEAR_LIMIT: 'LG_ALERT_FDS_NEAR_LIMIT',
  HANDLES_GROWING: 'LG_ALERT_HANDLES_GROWING',
  THREADS_GROWING: 'LG_ALERT_THREADS_GROWING',
} as const);

export type AlertCode = (typeof AlertCodes)[keyof typeof AlertCodes];
export type AlertSeverity = 'warning' | 'critical';

/** An active alert. One per code and subject; its `value` and `message` follow the condition while it lasts. */
export interface Alert {
  readonly code: AlertCode;
  readonly severity: AlertSeverity;
  /** What the alert is about: a pool's name, or `process`. */
  readonly subject: string;
  /** The pool's name for pool alerts, null for process alerts. */
  readonly pool: string | null;
  /** What is wrong, with the figures. */
  readonly message: string;
  /** The figure compared with the threshold (a ratio, a count, milliseconds: see the code's page). */
  readonly value: number;
  readonly threshold: number;
  /** Wall-clock time the alert was raised. */
  readonly raisedAt: Date;
}

/** An alert whose condition ended. */
export interface ClearedAlert extends Alert {
  readonly clearedAt: Date;
  /** How long it was active. */
  readonly activeMs: number;
}

export interface AlertEvents {
  alert: Alert;
  clear: ClearedAlert;
}

export interface AlertMonitorOptions {
  /** How often conditions are evaluated, on the shared housekeeping timer. @default 1000 */
  readonly intervalMs?: number;
  /** Share of `max` in use at which a pool counts as saturated (0 to 1; Infinity disables). @default 0.8 */
  readonly usageRatio?: number;
  /** How long a pool must stay saturated before `LG_ALERT_POOL_SATURATED` is raised. @default 30000 */
  readonly saturatedForMs?: number;
  /** Raise `LG_ALERT_POOL_PENDING` while more acquires than this wait (Infinity disables). @default 10 */
  readonly pendingAbove?: number;
  /** `LG_ALERT_ACQUIRE_TIMEOUT` stays raised this long after the latest acquire timeout. @default 60000 */
  readonly timeoutWindowMs?: number;
  /** `LG_ALERT_LEAK` stays raised this long after the latest dropped or reclaimed lease (held leases keep it raised until released). @default 60000 */
  readonly leakWindowMs?: number;
  /** Raise `LG_ALERT_CLOSE_WAIT` when the process has more CLOSE_WAIT sockets than this (Infinity disables). @default 10 */
  readonly closeWaitAbove?: number;
  /** ...or when one has been in CLOSE_WAIT at least this long (by sampling; Infinity disables). @default 60000 */
  readonly closeWaitMaxAgeMs?: number;
  /** Share of the open-file limit at which `LG_ALERT_FDS_NEAR_LIMIT` is raised (0 to 1; Infinity disables). @default 0.8 */
  readonly fdRatio?: number;
  /** Window over which handle and thread counts are checked for growth. @default 300000 */
  readonly growthWindowMs?: number;
  /** Raise `LG_ALERT_HANDLES_GROWING` when the floor of active handles rose this much over the window (Infinity disables). @default 100 */
  readonly handleGrowth?: number;
  /** Raise `LG_ALERT_THREADS_GROWING` when the floor of the thread count rose this much over the window (Infinity disables). @default 10 */
  readonly threadGrowth?: number;
  /** Read the kernel's tables (`/proc`) for CLOSE_WAIT sockets, descriptors and threads. @default true on Linux, false elsewhere */
  readonly process?: boolean;
  /** Process whose tables are read. @default process.pid */
  readonly pid?: number;
  /** Where `/proc` is (see the doctor's `ProcOptions`). @default { procRoot: '/proc' } */
  readonly proc?: ProcOptions;
  /** Where the one line per raised or cleared alert goes; false for nowhere. @default a JSON line on stderr */
  readonly log?: ((line: string) => void) | false;
  /** Collector to read; one of its own is made (and closed with the monitor) when not given. @default a new MetricsCollector */
  readonly collector?: MetricsCollector;
  /** Time source, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
}

type Condition = Omit<Alert, 'raisedAt'>;

interface Active {
  alert: Alert;
  readonly raisedAtMs: number;
}

const KNOWN = new Set([
  'intervalMs', 'usageRatio', 'saturatedForMs', 'pendingAbove', 'timeoutWindowMs', 'leakWindowMs', 'closeWaitAbove',
  'closeWaitMaxAgeMs', 'fdRatio', 'growthWindowMs', 'handleGrowth', 'threadGrowth', 'process', 'pid', 'proc', 'log',
  'collector', 'clock',
]);

const PROCESS_CODES: ReadonlySet<AlertCode> = new Set([AlertCodes.CLOSE_WAIT, AlertCodes.FDS_NEAR_LIMIT, AlertCodes.THREADS_GROWING]);

function ratioOption(source: Record<string, unknown>, key: string, fallback: number): number {
  const value = numberOption(source, key, fallback, { allowInfinity: true });
  if (value > 1 && value !== Infinity) {
    throw new InvalidOptionError(key, `invalid option "${key}": expected a ratio between 0 and 1 (or Infinity to disable), got number ${value}`);
  }
  return value;
}

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10} s`;

/**
 * Watches every open pool, and the process itself, for the creeps behind the incidents: a pool stuck
 * near its max, waiters piling up, acquire timeouts, leaks, CLOSE_WAIT sockets, descriptors near the
 * limit, handle or thread counts that keep rising. A condition that starts raises an `alert` event and
 * writes one log line; when it ends, `clear` and one more line. Runs on the process's shared unref'd
 * housekeeping timer; `close()` takes its task off it.
 */
export class AlertMonitor extends Emitting<AlertEvents> {
  readonly #clock: Clock;
  readonly #collector: MetricsCollector;
  readonly #ownsCollector: boolean;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  readonly #log: ((line: string) => void) | null;
  readonly #usageRatio: number;
  readonly #saturatedForMs: number;
  readonly #pendingAbove: number;
  readonly #timeoutWindowMs: number;
  readonly #leakWindowMs: number;
  readonly #closeWaitAbove: number;
  readonly #closeWaitMaxAgeMs: number;
  readonly #fdRatio: number;
  readonly #handleGrowth: number;
  readonly #threadGrowth: number;
  readonly #pid: number;
  readonly #proc: ProcOptions | undefined;
  #readProcess: boolean;
  readonly #active = new Map<string, Active>();
  /** Since when each pool (by name) has been at or above the usage ratio. */
  readonly #saturatedSince = new Map<string, number>();
  readonly #sockets = new Sampler(1);
  readonly #handles: GrowthTracker;
  readonly #threads: GrowthTracker;
  #reading: Promise<ProcessSnapshot | null> | null = null;
  #lastProcess: ProcessSnapshot | null = null;
  #closed = false;

  constructor(options?: AlertMonitorOptions) {
    super('alert monitor');
    const source = optionsRecord(options, KNOWN, 'AlertMonitor');
    const givenClock = source['clock'] === undefined ? undefined : clockOption(source);
    const intervalMs = numberOption(source, 'intervalMs', 1000, { min: 1 });
    this.#usageRatio = ratioOption(source, 'usageRatio', 0.8);
    this.#saturatedForMs = numberOption(source, 'saturatedForMs', 30_000);
    this.#pendingAbove = numberOption(source, 'pendingAbove', 10, { allowInfinity: true });
    this.#timeoutWindowMs = numberOption(source, 'timeoutWindowMs', 60_000);
    this.#leakWindowMs = numberOption(source, 'leakWindowMs', 60_000);
    this.#closeWaitAbove = numberOption(source, 'closeWaitAbove', 10, { allowInfinity: true });
    this.#closeWaitMaxAgeMs = numberOption(source, 'closeWaitMaxAgeMs', 60_000, { allowInfinity: true });
    this.#fdRatio = ratioOption(source, 'fdRatio', 0.8);
    const growthWindowMs = numberOption(source, 'growthWindowMs', 300_000, { min: 1 });
    this.#handleGrowth = numberOption(source, 'handleGrowth', 100, { min: 1, allowInfinity: true });
    this.#threadGrowth = numberOption(source, 'threadGrowth', 10, { min: 1, allowInfinity: true });
    const readProcess = source['process'] ?? process.platform === 'linux';
    if (typeof readProcess !== 'boolean') throw new InvalidOptionError('process', `invalid option "process": expected a boolean, got ${describe(readProcess)}`);
    this.#readProcess = readProcess;
    this.#pid = numberOption(source, 'pid', process.pid, { integer: true, min: 1 });
    const proc = source['proc'];
    if (proc !== undefined && (typeof proc !== 'object' || proc === null)) throw new InvalidOptionError('proc', `invalid option "proc": expected an object of /proc reader options, got ${describe(proc)}`);
    this.#proc = proc;
    const log = source['log'];
    if (log !== undefined && log !== false && typeof log !== 'function') throw new InvalidOptionError('log', `invalid option "log": expected a function or false, got ${describe(log)}`);
    this.#log = log === false ? null : (log as ((line: string) => void) | undefined) ?? ((line) => { process.stderr.write(`${line}\n`); });
    this.#handles = new GrowthTracker(growthWindowMs);
    this.#threads = new GrowthTracker(growthWindowMs);
    // Last, once every other option is valid: a rejected monitor must leave no collector subscribed.
    // Pool timings come from the collector's clock, so the monitor measures with the same one.
    const { collector, owned } = useCollector(source['collector'], givenClock);
    this.#collector = collector;
    this.#ownsCollector = owned;
    this.#clock = collector.clock;
    this.#housekeeper = Housekeeper.for(this.#clock);
    this.#task = {
      periodMs: intervalMs,
      run: () => {
        this.check().catch((error: unknown) => {
          process.emitWarning(error instanceof Error ? error : new Error(String(error)), { code: 'LIFEGUARD_ALERTS' });
        });
      },
    };
    this.#housekeeper.register(this.#task);
  }

  /** The alerts raised and not cleared, oldest first. */
  active(): Alert[] {
    return [...this.#active.values()].map((a) => a.alert);
  }

  /** The latest reading of the kernel's tables, or null before the first (or when `process` is off). */
  get lastProcessSnapshot(): ProcessSnapshot | null {
    return this.#lastProcess;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Evaluates every condition now (the timer does it every `intervalMs`): pools at once, then the
   * process once its tables are read. Resolves when both are done.
   */
  async check(): Promise<void> {
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#checkPools(this.#collector.snapshot(), now);
    // Handles can only be counted from inside: watching another pid, this process's would mislead.
    if (this.#pid === process.pid) {
      this.#handles.add(now, process.getActiveResourcesInfo().length);
      this.#checkGrowth(AlertCodes.HANDLES_GROWING, 'active handles', this.#handles, this.#handleGrowth, now);
    }
    if (!this.#readProcess) return;
    const snapshot = await this.#read();
    if (snapshot === null || this.closed) return; // closed while reading
    this.#lastProcess = snapshot;
    this.#checkProcess(snapshot, this.#clock.now());
  }

  /** Stops watching: off the shared timer, every listener dropped, the collector closed if it is ours. Active alerts are left as they are, without `clear` events. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#housekeeper.unregister(this.#task);
    this.removeAllListeners();
    if (this.#ownsCollector) this.#collector.close();
  }

  /** Resolves once no read of the kernel's tables is in flight (after `close()`: when the monitor holds nothing at all). */
  async idle(): Promise<void> {
    await this.#reading;
  }

  #read(): Promise<ProcessSnapshot | null> {
    this.#reading ??= snapshotProcess(this.#pid, this.#proc).then(
      (snapshot) => snapshot,
      (error: unknown) => {
        // A table caught mid-update is worth another try at the next tick.
        if (error instanceof DoctorError && error.code === DoctorErrorCodes.PARSE) return null;
        // Unsupported platform, a vanished process, no permission: say it once and stop trying.
        this.#readProcess = false;
        for (const key of [...this.#active.keys()]) {
          const active = this.#active.get(key);
          if (active !== undefined && PROCESS_CODES.has(active.alert.code)) this.#active.delete(key);
        }
        process.emitWarning(`alert monitor: cannot read the kernel's tables for process ${this.#pid}, so CLOSE_WAIT, descriptor and thread alerts are off: ${error instanceof Error ? error.message : String(error)}`, { code: 'LIFEGUARD_ALERTS' });
        return null;
      },
    ).finally(() => { this.#reading = null; });
    return this.#reading;
  }

  #checkPools(pools: readonly PoolSnapshot[], now: number): void {
    const seen = new Set<string>();
    const open = new Set<string>();
    const apply = (condition: Condition | null, code: AlertCode, subject: string): void => {
      seen.add(`${code}|${subject}`);
      this.#apply(condition, code, subject, now);
    };
    for (const pool of pools) {
      const { name, stats } = pool;
      open.add(name);
      const usage = stats.max === 0 ? 0 : stats.inUse / stats.max;
      let saturated: Condition | null = null;
      if (usage >= this.#usageRatio) {
        const since = this.#saturatedSince.get(name) ?? now;
        this.#saturatedSince.set(name, since);
        if (now - since >= this.#saturatedForMs) {
          saturated = {
            code: AlertCodes.POOL_SATURATED, severity: 'warning', subject: name, pool: name, value: usage, threshold: this.#usageRatio,
            message: `pool "${name}" has had ${stats.inUse} of ${stats.max} connections in use (${Math.round(usage * 100)}%, threshold ${Math.round(this.#usageRatio * 100)}%) for ${seconds(now - since)}; ${stats.pending} acquires waiting`,
          };
        }
      } else this.#saturatedSince.delete(name);
      apply(saturated, AlertCodes.POOL_SATURATED, name);

      apply(stats.pending > this.#pendingAbove ? {
        code: AlertCodes.POOL_PENDING, severity: 'warning', subject: name, pool: name, value: stats.pending, threshold: this.#pendingAbove,
        message: `pool "${name}" has ${stats.pending} acquires waiting (threshold ${this.#pendingAbove}); ${stats.inUse} of ${stats.max} connections in use, ${stats.creating} being created`,
      } : null, AlertCodes.POOL_PENDING, name);

      const last = pool.lastTimeoutAtMs;
      apply(last !== null && now - last < this.#timeoutWindowMs ? {
        code: AlertCodes.ACQUIRE_TIMEOUT, severity: 'critical', subject: name, pool: name, value: stats.timeouts, threshold: 0,
        message: `pool "${name}": an acquire timed out ${seconds(now - last)} ago (${stats.timeouts} timeouts since the pool started); ${stats.inUse} of ${stats.max} in use, ${stats.pending} waiting`,
      } : null, AlertCodes.ACQUIRE_TIMEOUT, name);

      apply(this.#leakCondition(pool, now), AlertCodes.LEAK, name);
    }
    for (const name of this.#saturatedSince.keys()) if (!open.has(name)) this.#saturatedSince.delete(name);
    // A pool that closed takes its conditions with it.
    for (const [key, active] of this.#active) {
      if (active.alert.pool !== null && !seen.has(key)) this.#apply(null, active.alert.code, active.alert.subject, now);
    }
  }

  #leakCondition(pool: PoolSnapshot, now: number): Condition | null {
    const recent = pool.recentLeaks.filter((r) => now - r.reportedAtMs < this.#leakWindowMs);
    const count = pool.openLeaks.length + recent.length;
    if (count === 0) return null;
    const first = pool.openLeaks[0] ?? recent[0];
    const parts = [];
    if (pool.openLeaks.length > 0) parts.push(`${pool.openLeaks.length} lease(s) held too long and not released`);
    if (recent.length > 0) parts.push(`${recent.length} lease(s) dropped or reclaimed in the last ${seconds(this.#leakWindowMs)}`);
    return {
      code: AlertCodes.LEAK, severity: 'warning', subject: pool.name, pool: pool.name, value: count, threshold: 0,
      message: `pool "${pool.name}": ${parts.join(', ')}; first acquired at ${first?.report.site ?? '(site not sampled)'}`,
    };
  }

  #checkGrowth(code: AlertCode, what: string, tracker: GrowthTracker, threshold: number, now: number): void {
    const rise = tracker.floorRise(now);
    this.#apply(rise !== null && rise >= threshold ? {
      code, severity: 'warning', subject: 'process', pool: null, value: rise, threshold,
      message: `${what} keep growing: the lowest count rose by ${rise} over the window (threshold ${threshold}), now ${tracker.latest ?? 0}`,
    } : null, code, 'process', now);
  }

  #checkProcess(snapshot: ProcessSnapshot, now: number): void {
    // The doctor's sampler ages each socket in its state (the kernel does not say since when), on our clock.
    this.#sockets.add({ ...snapshot, takenAt: now, handles: null });
    const closeWait = this.#sockets.sockets().filter((s) => s.socket.state === 'CLOSE_WAIT');
    const byRemote = new Map<string, number>();
    let oldest = 0;
    for (const { peer, inStateMs } of closeWait) {
      oldest = Math.max(oldest, inStateMs);
      byRemote.set(peer, (byRemote.get(peer) ?? 0) + 1);
    }
    const tooMany = closeWait.length > this.#closeWaitAbove;
    const tooOld = closeWait.length > 0 && oldest >= this.#closeWaitMaxAgeMs;
    const remotes = [...byRemote].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([remote, n]) => `${remote} x${n}`).join(', ');
    this.#apply(tooMany || tooOld ? {
      code: AlertCodes.CLOSE_WAIT, severity: 'warning', subject: 'process', pool: null,
      value: tooMany ? closeWait.length : oldest, threshold: tooMany ? this.#closeWaitAbove : this.#closeWaitMaxAgeMs,
      message: `${closeWait.length} sockets in CLOSE_WAIT (threshold ${this.#closeWaitAbove}), the oldest for at least ${seconds(oldest)} (threshold ${seconds(this.#closeWaitMaxAgeMs)}): ${remotes}; the peers closed and this process never did (run the doctor to see which pool and lease hold them)`,
    } : null, AlertCodes.CLOSE_WAIT, 'process', now);

    const { open, limit } = snapshot.fds;
    const fdUsage = limit === Infinity || limit === 0 ? 0 : open / limit;
    this.#apply(fdUsage >= this.#fdRatio ? {
      code: AlertCodes.FDS_NEAR_LIMIT, severity: 'critical', subject: 'process', pool: null, value: fdUsage, threshold: this.#fdRatio,
      message: `${open} of ${limit} file descriptors open (${Math.round(fdUsage * 100)}%, threshold ${Math.round(this.#fdRatio * 100)}%): new sockets and files will fail with EMFILE`,
    } : null, AlertCodes.FDS_NEAR_LIMIT, 'process', now);

    this.#threads.add(now, snapshot.threads);
    this.#checkGrowth(AlertCodes.THREADS_GROWING, 'threads', this.#threads, this.#threadGrowth, now);
  }

  /** Raises, updates or clears the alert of `code` and `subject` according to `condition`. */
  #apply(condition: Condition | null, code: AlertCode, subject: string, now: number): void {
    const key = `${code}|${subject}`;
    const active = this.#active.get(key);
    if (condition !== null) {
      if (active !== undefined) {
        active.alert = { ...condition, raisedAt: active.alert.raisedAt };
        return;
      }
      const alert: Alert = { ...condition, raisedAt: new Date() };
      this.#active.set(key, { alert, raisedAtMs: now });
      this.#write('warn', 'raised', alert, alert.message);
      this.emit('alert', alert);
      return;
    }
    if (active === undefined) return;
    this.#active.delete(key);
    const cleared: ClearedAlert = { ...active.alert, clearedAt: new Date(), activeMs: now - active.raisedAtMs };
    this.#write('info', 'cleared', cleared, `cleared after ${seconds(cleared.activeMs)}: ${active.alert.message}`);
    this.emit('clear', cleared);
  }

  #write(level: string, state: string, alert: Alert, message: string): void {
    this.#log?.(JSON.stringify({ level, code: alert.code, state, severity: alert.severity, subject: alert.subject, value: alert.value, threshold: alert.threshold, msg: message }));
  }
}
