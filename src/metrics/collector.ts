import { systemClock, type Clock } from '../internal/clock.js';
import { subscribe, type ChannelMessages } from '../pool/diagnostics.js';
import { InvalidOptionError } from '../pool/errors.js';
import type { LeakReport } from '../pool/events.js';
import { describe, numberOption, rejectUnknownKeys } from '../pool/options.js';
import type { Pool } from '../pool/pool.js';
import { pools } from '../pool/registry.js';
import type { PoolStats } from '../pool/stats.js';
import { Emitting } from './emitting.js';
import { SlidingWindow, type Percentiles } from './window.js';

/** A timing the collector saw on a diagnostics channel, in seconds (the unit of both OpenTelemetry and Prometheus). */
export interface Observation {
  readonly pool: Pool<unknown>;
  readonly name: string;
  /** `create`: one `factory.create`; `wait`: one acquire, queueing included; `use`: one lease, acquire to release. */
  readonly kind: 'create' | 'wait' | 'use';
  readonly seconds: number;
}

/** A leak report the collector keeps: every `held` lease not yet released, and the latest dropped or reclaimed ones. */
export interface LeakRecord {
  readonly report: LeakReport;
  readonly message: string;
  /** Wall-clock time of the report. */
  readonly reportedAt: Date;
  /** Monotonic time of the report (the collector's clock). */
  readonly reportedAtMs: number;
}

/** Everything the collector knows about one open pool at one instant. */
export interface PoolSnapshot {
  readonly pool: Pool<unknown>;
  readonly name: string;
  readonly stats: PoolStats;
  /** Acquire wait times (ms) over the last `percentileWindowMs`, acquires that timed out included. */
  readonly wait: Percentiles;
  /** Leases reported `held` and still out, oldest report first. */
  readonly openLeaks: readonly LeakRecord[];
  /** The latest `dropped` and `reclaimed` reports (at most `recentLeaks`), oldest first. */
  readonly recentLeaks: readonly LeakRecord[];
  /** Leak reports seen since the collector started, by kind. */
  readonly leaksByKind: Readonly<Record<LeakReport['kind'], number>>;
  /** Monotonic time of the latest acquire timeout seen, or null. */
  readonly lastTimeoutAtMs: number | null;
}

export interface MetricsCollectorOptions {
  /** How far back the wait-time percentiles look. @default 60000 */
  readonly percentileWindowMs?: number;
  /** Most wait times kept per pool for the percentiles; past it, the oldest are dropped. @default 10000 */
  readonly percentileCapacity?: number;
  /** How many dropped or reclaimed leak reports are kept per pool. @default 20 */
  readonly recentLeaks?: number;
  /** Time source of the percentile window and report times, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
}

export interface CollectorEvents {
  /** A create, wait or use time: what histograms record. */
  observe: Observation;
}

interface PoolState {
  readonly wait: SlidingWindow;
  readonly openLeaks: Map<number, LeakRecord>;
  readonly recentLeaks: LeakRecord[];
  readonly leaksByKind: Record<LeakReport['kind'], number>;
  lastTimeoutAtMs: number | null;
}

const KNOWN = new Set(['percentileWindowMs', 'percentileCapacity', 'recentLeaks', 'clock']);

/** Checks that `clock`, when given, is a {@link Clock}. */
export function clockOption(source: Record<string, unknown>): Clock {
  const clock = source['clock'];
  if (clock === undefined) return systemClock;
  const c: Partial<Clock> | null = clock;
  if (typeof c !== 'object' || c === null || typeof c.now !== 'function' || typeof c.setTimeout !== 'function' || typeof c.clearTimeout !== 'function') {
    throw new InvalidOptionError('clock', `invalid option "clock": expected an object with now(), setTimeout() and clearTimeout(), got ${describe(clock)}`);
  }
  return clock as Clock;
}

/** Checks that `options` is an object (or undefined) with only `known` keys; returns it as a record. */
export function optionsRecord(options: unknown, known: ReadonlySet<string>, what: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', `invalid options for ${what}: expected an object, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, known, what);
  return options as Record<string, unknown>;
}

/**
 * Subscribes to every pool's `node:diagnostics_channel` events: no pool has to be wired by hand, and
 * pools made after the collector are seen too. It keeps what a snapshot of `pool.stats()` cannot give
 * (recent wait-time percentiles, open leak reports, the latest timeout) and forwards timings to the
 * OpenTelemetry and Prometheus exporters. It holds no timer and no handle; `close()` unsubscribes.
 * State is kept per pool in a WeakMap, so a pool nobody closed is still collectable.
 */
export class MetricsCollector extends Emitting<CollectorEvents> {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #capacity: number;
  readonly #recentLeaks: number;
  readonly #states = new WeakMap<Pool<unknown>, PoolState>();
  readonly #unsubscribe: (() => void)[];
  #closed = false;

  constructor(options?: MetricsCollectorOptions) {
    super('metrics collector');
    const source = optionsRecord(options, KNOWN, 'MetricsCollector');
    this.#clock = clockOption(source);
    this.#windowMs = numberOption(source, 'percentileWindowMs', 60_000, { min: 1 });
    this.#capacity = numberOption(source, 'percentileCapacity', 10_000, { integer: true, min: 1 });
    this.#recentLeaks = numberOption(source, 'recentLeaks', 20, { integer: true, min: 0 });
    this.#unsubscribe = [
      subscribe('create', (m) => { this.#observe(m, 'create', m.durationMs); }),
      subscribe('acquire', (m) => {
        this.#state(m.pool).wait.add(this.#clock.now(), m.waitedMs);
        this.#observe(m, 'wait', m.waitedMs);
      }),
      subscribe('release', (m) => { this.#observe(m, 'use', m.heldMs); }),
      // A timed-out acquire waited too: leaving it out would hold p99 at the slowest success while acquires time out.
      subscribe('timeout', (m) => {
        const state = this.#state(m.pool);
        state.lastTimeoutAtMs = this.#clock.now();
        state.wait.add(state.lastTimeoutAtMs, m.waitedMs);
      }),
      subscribe('leak', (m) => { this.#onLeak(m); }),
      subscribe('unleaked', (m) => { this.#state(m.pool).openLeaks.delete(m.leaseId); }),
      // A closed pool's leases were all taken back: none of its leaks is open any more.
      subscribe('close', (m) => { this.#states.delete(m.pool); }),
    ];
  }

  get clock(): Clock {
    return this.#clock;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A snapshot of every open pool of the process, oldest first. */
  snapshot(): PoolSnapshot[] {
    const now = this.#clock.now();
    return pools().map((pool) => {
      const state = this.#state(pool);
      return {
        pool,
        name: pool.name,
        stats: pool.stats(),
        wait: state.wait.percentiles(now),
        openLeaks: [...state.openLeaks.values()],
        recentLeaks: [...state.recentLeaks],
        leaksByKind: { ...state.leaksByKind },
        lastTimeoutAtMs: state.lastTimeoutAtMs,
      };
    });
  }

  /** Unsubscribes from the channels and drops every listener. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.removeAllListeners();
  }

  #state(pool: Pool<unknown>): PoolState {
    let state = this.#states.get(pool);
    if (state === undefined) {
      state = {
        wait: new SlidingWindow(this.#windowMs, this.#capacity),
        openLeaks: new Map(),
        recentLeaks: [],
        leaksByKind: { held: 0, dropped: 0, reclaimed: 0 },
        lastTimeoutAtMs: null,
      };
      this.#states.set(pool, state);
    }
    return state;
  }

  #observe(message: { readonly pool: Pool<unknown>; readonly name: string }, kind: Observation['kind'], ms: number): void {
    if (this.hasListeners('observe')) this.emit('observe', { pool: message.pool, name: message.name, kind, seconds: ms / 1000 });
  }

  #onLeak(message: ChannelMessages['leak']): void {
    const state = this.#state(message.pool);
    const { report } = message;
    const now = this.#clock.now();
    const record: LeakRecord = { report, message: message.message, reportedAt: new Date(), reportedAtMs: now };
    state.leaksByKind[report.kind]++;
    if (report.kind === 'held') {
      state.openLeaks.set(report.id, record);
      return;
    }
    // Dropped and reclaimed leases are over (their resource was destroyed): history, not an open leak.
    state.openLeaks.delete(report.id);
    state.recentLeaks.push(record);
    if (state.recentLeaks.length > this.#recentLeaks) state.recentLeaks.splice(0, state.recentLeaks.length - this.#recentLeaks);
  }
}
