/** The pool's options: their types, documentation, defaults and validation. */
import type { Socket } from 'node:net';
import type { Clock } from '../internal/clock.js';
import type { Budget } from '../budget/budget.js';
import type { LendGuard } from './pool-entry.js';
import { InvalidOptionError } from '../internal/errors.js';
import { clockOption, describe, durationOption, fail, numberOption, oneOf, rejectUnknownKeys, timeoutProblem } from '../internal/options.js';
import { AcquireSite } from '../leak/site.js';

// Re-exported for the folders that still import the validators from here.
export { describe, numberOption, rejectUnknownKeys, type NumberRule } from '../internal/options.js';

/** Passed to {@link Factory.create}. */
export interface CreateContext {
  /** Aborted when creation times out (`createTimeoutMs`) or the pool is destroyed: stop connecting then. */
  readonly signal: AbortSignal;
  /**
   * Aborted (reason: `LG_CREATE_UNWANTED`) when no waiter needs this creation any more (they were served
   * by other resources, gave up or timed out) and `min` does not either. For a factory that first waits
   * in a line before doing any work (a fleet budget's permit, a connection slot): leave the line and
   * reject, and the pool takes the creation as withdrawn, not failed (no backoff). Work already under way
   * should ignore it: abandoned connects only waste work, and under short acquire timeouts would keep a
   * pool from ever growing.
   */
  readonly unwanted: AbortSignal;
  /**
   * Reports that the resource broke on its own (its socket closed, the server dropped the session).
   * Idle: destroyed at once and replaced up to `min`. Lent: destroyed when the lease ends.
   * Call it from the resource's own `error`/`close` listeners.
   */
  readonly invalidate: (reason?: unknown) => void;
  /**
   * Takes the resource back at once, even from a lease: it is destroyed now (reason `'error'`), its
   * slot freed. The holder's lease then throws `LG_LEASE_REVOKED` on `.resource`, while its `release()`
   * and `destroy()` become no-ops (the holder did nothing wrong). For resources that must not outlive a
   * right to exist, e.g. a connection whose fleet-wide budget permit was lost.
   */
  readonly revoke: (reason?: unknown) => void;
  /**
   * Says the resource now belongs to another pool (lifeguard/http hands an open connection to another
   * scope's pool): it leaves this one without counting as broken, destroyed with reason `'moved'` at once
   * when idle, else when its lease ends. The factory's `destroy` is still called for it, and must leave
   * open what moved.
   */
  readonly moved: () => void;
  /**
   * Registers a lend guard: an object whose `validUntil` (milliseconds of the pool's clock) says until
   * when the resource may still be lent. Before lending it, and before handing it from one lease to the
   * next, the pool compares `guard.validUntil <= now`; once true the resource is destroyed (reason
   * `'revoked'`) instead, and a waiter keeps its place for the next resource. The `budget` option
   * registers each resource's permit; guards registered together all apply (the earliest `validUntil`
   * wins). Without a guard: `validUntil` is Infinity.
   */
  readonly guard: (guard: LendGuard) => void;
  /**
   * Marks a creation error as permanent (a wrong password, an unknown database or role) and returns it:
   * `throw context.permanent(error)`. Waiting acquires then fail at once with `LG_CREATE_FAILED` (cause:
   * the error), as do new acquires that would have to wait for a creation, instead of waiting out their
   * deadline; the pool keeps retrying in the background with backoff and lends again once one succeeds.
   */
  readonly permanent: <E>(error: E) => E;
}

/** Passed to {@link Factory.validate}. */
export interface ValidateContext {
  /** Aborted when validation exceeds `validateTimeoutMs`. */
  readonly signal: AbortSignal;
}

/** How the pool makes, checks, cleans and disposes of resources. */
export interface Factory<T> {
  /** Makes a resource. Rejections are retried with backoff and surface as an acquire timeout's `cause`. */
  create(context: CreateContext): Promise<T>;
  /** Disposes of a resource. Bounded by `destroyTimeoutMs`; errors are reported, never thrown at callers. */
  destroy(resource: T): Promise<void> | void;
  /** Checks a resource; false or a rejection destroys it. Used on borrow after idleness and by keep-alive. */
  validate?(resource: T, context: ValidateContext): Promise<boolean> | boolean;
  /** Cleans a returned resource (roll back, clear session state) before it is lent again; a rejection destroys it. */
  reset?(resource: T): Promise<void> | void;
  /**
   * The TCP socket a resource owns, if any: lets the doctor say which pool and lease hold a socket it
   * finds in the kernel's table (a CLOSE_WAIT socket "held by pool db, lease acquired at app.ts:42").
   * Not needed when the resource is itself a `net.Socket`.
   */
  socket?(resource: T): Socket | null | undefined;
}

export type LeakDetectionMode = 'off' | 'sampled' | 'full';
export type IdleOrder = 'lifo' | 'fifo';

export interface PoolOptions<T> {
  /** How resources are made, validated, reset and destroyed. Required. */
  readonly factory: Factory<T>;
  /** Name used in messages, events and metrics. @default `"pool-<n>"` */
  readonly name?: string;
  /** Most resources alive at once (idle, lent and being created). @default 10 */
  readonly max?: number;
  /** Resources kept ready: created at start and after every eviction; never evicted for idleness. @default 0 */
  readonly min?: number;
  /** Default deadline of `acquire()`, covering queueing, creation and validation. @default 30000 */
  readonly acquireTimeoutMs?: number;
  /** Most acquires allowed to wait; one more is rejected at once with `LG_QUEUE_FULL`. @default Infinity */
  readonly maxWaiting?: number;
  /** Deadline of one `factory.create` call. @default 30000 */
  readonly createTimeoutMs?: number;
  /** Most `factory.create` calls in flight at once. @default min(max, 4) */
  readonly maxConcurrentCreates?: number;
  /** First delay after a failed create; doubles per consecutive failure, with full jitter. @default 100 */
  readonly createRetryInitialDelayMs?: number;
  /** Cap of the create retry delay. @default 5000 */
  readonly createRetryMaxDelayMs?: number;
  /** Deadline of one `factory.destroy` call; past it the pool stops waiting and reports `LG_DESTROY_TIMEOUT`. @default 5000 */
  readonly destroyTimeoutMs?: number;
  /** Validate on borrow only a resource idle for at least this long (0: every borrow from idle; a resource handed straight from one lease to the next waiter is not validated). @default 500 */
  readonly validateAfterIdleMs?: number;
  /** Deadline of one `factory.validate` call. @default 5000 */
  readonly validateTimeoutMs?: number;
  /** Destroy a resource idle this long while more than `min` are alive (0: never). @default 30000 */
  readonly idleTimeoutMs?: number;
  /** Destroy a resource this old (0: never); lent ones are destroyed when they come back. @default 1800000 */
  readonly maxLifetimeMs?: number;
  /** Each resource's lifetime is shortened by a random amount up to this, so they don't expire together. @default maxLifetimeMs / 40 */
  readonly maxLifetimeJitterMs?: number;
  /** Probe (`factory.validate`) a resource idle this long, and again at this interval (0: never). @default 0 */
  readonly keepAliveIntervalMs?: number;
  /** Which idle resource is lent next: the most recently used (`lifo`, lets surplus age out) or the least. @default 'lifo' */
  readonly idleOrder?: IdleOrder;
  /** Period of this pool's housekeeping on the shared timer. @default min(1000, smallest enabled timing / 4), at least 10 */
  readonly housekeepingIntervalMs?: number;
  /** Acquire-site capture: `off` (no leak detection), `sampled` (a fraction, full under pressure), `full`. @default 'sampled' */
  readonly leakDetection?: LeakDetectionMode;
  /** Fraction of acquires whose call site is captured in `sampled` mode. @default 0.001 (one in 1,000; full capture takes over under pressure) */
  readonly leakSampleRate?: number;
  /** Report a lease held longer than this with a `leak` event (0: never). @default 60000 */
  readonly leakWarnAfterMs?: number;
  /** Revoke a lease held longer than this: destroy its resource and free its slot (0: never). @default 0 */
  readonly reclaimAfterMs?: number;
  /** Time source, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
  /**
   * A connection budget shared with other pools or processes (`lifeguard/budget`: `createBudget(n)` or a
   * `RedisBudget`). Each resource is created only after taking a permit (waiting at most as long as the
   * create may) and the permit is given back once the resource is destroyed or its creation failed. A
   * permit reported lost invalidates its resource: destroyed at once when idle, when its lease ends when
   * lent. See docs/budget.md. @default none (only `max` limits the pool)
   */
  readonly budget?: Budget;
}

export interface ResolvedPoolOptions<T> {
  readonly factory: Factory<T>;
  readonly name: string;
  readonly max: number;
  readonly min: number;
  readonly acquireTimeoutMs: number;
  readonly maxWaiting: number;
  readonly createTimeoutMs: number;
  readonly maxConcurrentCreates: number;
  readonly createRetryInitialDelayMs: number;
  readonly createRetryMaxDelayMs: number;
  readonly destroyTimeoutMs: number;
  readonly validateAfterIdleMs: number;
  readonly validateTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly maxLifetimeJitterMs: number;
  readonly keepAliveIntervalMs: number;
  readonly idleOrder: IdleOrder;
  readonly housekeepingIntervalMs: number;
  readonly leakDetection: LeakDetectionMode;
  readonly leakSampleRate: number;
  readonly leakWarnAfterMs: number;
  readonly reclaimAfterMs: number;
  readonly clock: Clock | undefined;
  readonly budget: Budget | undefined;
}

const KNOWN_KEYS = new Set([
  'factory', 'name', 'max', 'min', 'acquireTimeoutMs', 'maxWaiting', 'createTimeoutMs', 'maxConcurrentCreates',
  'createRetryInitialDelayMs', 'createRetryMaxDelayMs', 'destroyTimeoutMs', 'validateAfterIdleMs',
  'validateTimeoutMs', 'idleTimeoutMs', 'maxLifetimeMs', 'maxLifetimeJitterMs', 'keepAliveIntervalMs',
  'idleOrder', 'housekeepingIntervalMs', 'leakDetection', 'leakSampleRate', 'leakWarnAfterMs', 'reclaimAfterMs',
  'clock', 'budget',
]);

let poolCounter = 0;

export function resolvePoolOptions<T>(options: PoolOptions<T>): ResolvedPoolOptions<T> {
  if (typeof options !== 'object' || (options as unknown) === null) fail('options', 'an object', options);
  rejectUnknownKeys(options, KNOWN_KEYS, 'Pool');
  const source = options as unknown as Record<string, unknown>;

  const factory = source['factory'] as Record<string, unknown> | null | undefined;
  if (typeof factory !== 'object' || factory === null) fail('factory', 'an object with create() and destroy()', factory);
  rejectUnknownKeys(factory, new Set(['create', 'destroy', 'validate', 'reset', 'socket']), 'factory');
  for (const fn of ['create', 'destroy'] as const) {
    if (typeof factory[fn] !== 'function') fail(`factory.${fn}`, 'a function', factory[fn]);
  }
  for (const fn of ['validate', 'reset', 'socket'] as const) {
    if (factory[fn] !== undefined && typeof factory[fn] !== 'function') fail(`factory.${fn}`, 'a function or undefined', factory[fn]);
  }

  const name = source['name'] ?? `pool-${++poolCounter}`;
  if (typeof name !== 'string' || name.length === 0) fail('name', 'a non-empty string', name);

  const max = numberOption(source, 'max', 10, { integer: true, min: 1 });
  const min = numberOption(source, 'min', 0, { integer: true, min: 0 });
  if (min > max) throw new InvalidOptionError('min', `invalid option "min": must be <= max (${max}), got number ${min}`);
  const maxConcurrentCreates = numberOption(source, 'maxConcurrentCreates', Math.min(max, 4), { integer: true, min: 1 });
  if (maxConcurrentCreates > max) {
    throw new InvalidOptionError('maxConcurrentCreates', `invalid option "maxConcurrentCreates": must be <= max (${max}), got number ${maxConcurrentCreates}`);
  }
  const createRetryInitialDelayMs = durationOption(source, 'createRetryInitialDelayMs', 100, { min: 1 });
  const createRetryMaxDelayMs = durationOption(source, 'createRetryMaxDelayMs', Math.max(5000, createRetryInitialDelayMs), { min: 1 });
  if (createRetryMaxDelayMs < createRetryInitialDelayMs) {
    throw new InvalidOptionError('createRetryMaxDelayMs', `invalid option "createRetryMaxDelayMs": must be >= createRetryInitialDelayMs (${createRetryInitialDelayMs}), got number ${createRetryMaxDelayMs}`);
  }

  const idleTimeoutMs = numberOption(source, 'idleTimeoutMs', 30_000);
  const maxLifetimeMs = numberOption(source, 'maxLifetimeMs', 1_800_000);
  const maxLifetimeJitterMs = numberOption(source, 'maxLifetimeJitterMs', Math.floor(maxLifetimeMs / 40));
  if (maxLifetimeMs > 0 && maxLifetimeJitterMs >= maxLifetimeMs) {
    throw new InvalidOptionError('maxLifetimeJitterMs', `invalid option "maxLifetimeJitterMs": must be < maxLifetimeMs (${maxLifetimeMs}), got number ${maxLifetimeJitterMs}`);
  }
  const keepAliveIntervalMs = numberOption(source, 'keepAliveIntervalMs', 0);
  if (keepAliveIntervalMs > 0 && factory['validate'] === undefined) {
    throw new InvalidOptionError('keepAliveIntervalMs', `invalid option "keepAliveIntervalMs": keep-alive probes call factory.validate, which is not given (got number ${keepAliveIntervalMs})`);
  }
  const leakDetection = oneOf(source, 'leakDetection', ['off', 'sampled', 'full'] as const, 'sampled');
  const leakSampleRate = numberOption(source, 'leakSampleRate', 0.001);
  if (leakSampleRate > 1) fail('leakSampleRate', 'a number between 0 and 1', leakSampleRate);
  const leakWarnAfterMs = numberOption(source, 'leakWarnAfterMs', 60_000);
  const reclaimAfterMs = numberOption(source, 'reclaimAfterMs', 0);
  if (leakDetection === 'off' && source['reclaimAfterMs'] !== undefined && reclaimAfterMs > 0) {
    throw new InvalidOptionError('reclaimAfterMs', `invalid option "reclaimAfterMs": reclaiming needs leak detection, but leakDetection is "off" (got number ${reclaimAfterMs})`);
  }

  const timings = [idleTimeoutMs, maxLifetimeMs, keepAliveIntervalMs, leakDetection === 'off' ? 0 : leakWarnAfterMs, reclaimAfterMs].filter((t) => t > 0);
  const derivedPeriod = Math.max(10, Math.min(1000, Math.floor(Math.min(Infinity, ...timings) / 4)));
  const housekeepingIntervalMs = durationOption(source, 'housekeepingIntervalMs', derivedPeriod, { min: 1 });

  const clock = clockOption(source);

  const budget = source['budget'] as Budget | undefined;
  if (budget !== undefined && (typeof budget !== 'object' || (budget as unknown) === null || typeof budget.acquire !== 'function' || typeof budget.stats !== 'function' || typeof budget.close !== 'function')) {
    fail('budget', 'a budget (an object with acquire(), stats() and close(), e.g. createBudget(n) or a RedisBudget)', budget);
  }

  return Object.freeze({
    factory: options.factory,
    name,
    max,
    min,
    acquireTimeoutMs: durationOption(source, 'acquireTimeoutMs', 30_000, { min: 1, allowInfinity: true }),
    maxWaiting: numberOption(source, 'maxWaiting', Infinity, { integer: true, min: 0, allowInfinity: true }),
    createTimeoutMs: durationOption(source, 'createTimeoutMs', 30_000, { min: 1, allowInfinity: true }),
    maxConcurrentCreates,
    createRetryInitialDelayMs,
    createRetryMaxDelayMs,
    destroyTimeoutMs: durationOption(source, 'destroyTimeoutMs', 5000, { min: 1, allowInfinity: true }),
    validateAfterIdleMs: numberOption(source, 'validateAfterIdleMs', 500),
    validateTimeoutMs: durationOption(source, 'validateTimeoutMs', 5000, { min: 1, allowInfinity: true }),
    idleTimeoutMs,
    maxLifetimeMs,
    maxLifetimeJitterMs,
    keepAliveIntervalMs,
    idleOrder: oneOf(source, 'idleOrder', ['lifo', 'fifo'] as const, 'lifo'),
    housekeepingIntervalMs,
    leakDetection,
    leakSampleRate,
    leakWarnAfterMs,
    reclaimAfterMs,
    clock,
    budget,
  });
}

/** Options of a single `acquire()` call. */
export interface AcquireOptions {
  /** Gives up waiting when aborted; the acquire rejects with `LG_ACQUIRE_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Deadline of this acquire. @default the pool's `acquireTimeoutMs` */
  readonly timeoutMs?: number;
  /** Free-form label shown in leak reports and `pool.leases()` (a request id, a job name). */
  readonly label?: string;
  /**
   * Where the caller's own caller asked for the resource: an `Error` (or `{ stack }`) it captured, recorded
   * as this lease's acquire site instead of the pool's own capture, in every `leakDetection` mode. For
   * layers that acquire on someone else's behalf (a request queue, a driver wrapper).
   */
  readonly site?: { readonly stack?: string | undefined };
}

/** Options of `close()`. */
export interface CloseOptions {
  /** How long to wait for outstanding leases before destroying their resources. @default 30000 */
  readonly timeoutMs?: number;
}

const ACQUIRE_KEYS = 'label, signal, site, timeoutMs';

/**
 * Checks one `acquire()` call's options, as the constructor checks its own (a misspelt `timeout` must not
 * be ignored): null when valid, else the error to reject with. No allocation when valid.
 */
export function checkAcquireOptions(options: AcquireOptions): InvalidOptionError | null {
  if (typeof options !== 'object' || (options as unknown) === null || Array.isArray(options)) {
    return new InvalidOptionError('options', `invalid acquire() options: expected an object or undefined, got ${describe(options)}`);
  }
  const given: unknown = options.timeoutMs;
  const problem = given === undefined ? null : timeoutProblem('acquire()', given);
  if (problem !== null) return new InvalidOptionError('timeoutMs', problem);
  for (const key in options) {
    if (key !== 'timeoutMs' && key !== 'label' && key !== 'signal' && key !== 'site') {
      return new InvalidOptionError(key, `unknown acquire() option "${key}"; known options: ${ACQUIRE_KEYS}`);
    }
  }
  const label: unknown = options.label;
  if (label !== undefined && typeof label !== 'string') {
    return new InvalidOptionError('label', `invalid acquire() option "label": expected a string or undefined, got ${describe(label)}`);
  }
  const site: unknown = options.site;
  // An Error's (or a captured site's) stack is not read here: reading it formats it, which only a report needs.
  if (site !== undefined && !(site instanceof Error || site instanceof AcquireSite || (typeof site === 'object' && site !== null && typeof (site as { stack?: unknown }).stack === 'string'))) {
    return new InvalidOptionError('site', `invalid acquire() option "site": expected an Error (or an object with a string stack) or undefined, got ${describe(site)}`);
  }
  const signal: unknown = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    return new InvalidOptionError('signal', `invalid acquire() option "signal": expected an AbortSignal or undefined, got ${describe(signal)}`);
  }
  return null;
}

const CLOSE_KEYS = new Set(['timeoutMs']);

/** `close()`'s grace period, from its options. */
export function closeTimeout(options: unknown): number {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', `invalid close() options: expected an object or undefined, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, CLOSE_KEYS, 'close()');
  return durationOption(options as Record<string, unknown>, 'timeoutMs', 30_000, { allowInfinity: true });
}
