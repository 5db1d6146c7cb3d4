/** generic-pool 3.x's API on Lifeguard's pool: priorities, drain/clear, its events and getters (lifeguard/compat/generic-pool). */
import { EventEmitter } from 'node:events';
import { systemClock } from '../internal/clock.js';
import { Deque } from '../internal/deque.js';
import { WaitQueue, type QueuedWaiter, type WaitQueueOwner } from '../internal/wait-queue.js';
import {
  AcquireTimeoutError,
  DestroyTimeoutError,
  DoubleReleaseError,
  ErrorCodes,
  ForeignLeaseError,
  InvalidOptionError,
  LifeguardError,
  PoolClosedError,
  QueueFullError,
} from '../pool/errors.js';
import type { Lease } from '../pool/lease.js';
import {
  describe,
  numberOption,
  rejectUnknownKeys,
  resolvePoolOptions,
  type CreateContext,
  type Factory as LifeguardFactory,
  type PoolOptions,
} from '../pool/options.js';
import { Pool as LifeguardPool } from '../pool/pool.js';

/**
 * `lifeguard/compat/generic-pool`: generic-pool 3.x's API on top of Lifeguard's {@link LifeguardPool}, so
 * that code written for generic-pool migrates by changing one import. docs/compat-generic-pool.md lists
 * how each option and method maps, and every difference.
 */

/** generic-pool's factory. Unlike Lifeguard's, `create` gets no arguments and there is no `reset`. */
export interface Factory<T> {
  create(): T | PromiseLike<T>;
  destroy(client: T): unknown;
  validate?(client: T): boolean | PromiseLike<boolean>;
}

/** generic-pool 3.x's options, all of them, and `name`; any other key is rejected, but for generic-pool 2's that 3 ignores. */
export interface Options {
  readonly max?: number | undefined;
  readonly min?: number | undefined;
  readonly maxWaitingClients?: number | undefined;
  readonly testOnBorrow?: boolean | undefined;
  readonly testOnReturn?: boolean | undefined;
  readonly acquireTimeoutMillis?: number | undefined;
  readonly destroyTimeoutMillis?: number | undefined;
  readonly fifo?: boolean | undefined;
  readonly priorityRange?: number | undefined;
  readonly autostart?: boolean | undefined;
  readonly evictionRunIntervalMillis?: number | undefined;
  readonly numTestsPerEvictionRun?: number | undefined;
  readonly softIdleTimeoutMillis?: number | undefined;
  readonly idleTimeoutMillis?: number | undefined;
  readonly Promise?: PromiseConstructorLike | undefined;
  /** Not generic-pool 3's (its version 2 had it): the Lifeguard pool's name, in reports and metrics. */
  readonly name?: string | undefined;
}

/**
 * Rejection of an acquire that waited `acquireTimeoutMillis`. Its `name` and `message` are generic-pool's
 * (`'TimeoutError'`, `'ResourceRequest timed out'`), so existing checks keep working; it is also a
 * Lifeguard {@link AcquireTimeoutError} (`code` `LG_ACQUIRE_TIMEOUT`), whose `cause` is the last creation
 * error when creation was failing.
 */
export class TimeoutError extends AcquireTimeoutError {
  override get name(): string {
    return 'TimeoutError';
  }
}

const OPTION_KEYS = new Set([
  'max', 'min', 'maxWaitingClients', 'testOnBorrow', 'testOnReturn', 'acquireTimeoutMillis', 'destroyTimeoutMillis',
  'fifo', 'priorityRange', 'autostart', 'evictionRunIntervalMillis', 'numTestsPerEvictionRun',
  'softIdleTimeoutMillis', 'idleTimeoutMillis', 'Promise',
]);

/**
 * generic-pool 2's options that generic-pool 3 ignores. Code upgraded from 2 still passes them (generic-pool's
 * own suite passes `log: false`), so they are accepted, with one warning per process; `name` names the pool.
 */
const IGNORED_V2_KEYS = ['log', 'refreshIdle', 'reapIntervalMillis', 'returnToHead'];
/** generic-pool 2's factory functions, which it took in the options: ignoring them would skip validation. */
const FACTORY_V2_KEYS = ['create', 'destroy', 'validate', 'validateAsync'];
let warnedIgnored = false;

// setTimeout fires at once (with a warning) beyond this; a longer deadline is, in practice, none.
const MAX_TIMER_MS = 2 ** 31 - 1;

const NOT_IN_POOL = 'Resource not currently part of this pool';
const DRAINING = 'pool is draining and cannot accept work';

let poolCounter = 0;

interface PromiseLibrary {
  resolve<V>(value: PromiseLike<V>): PromiseLike<V>;
}

interface Config {
  readonly max: number;
  readonly min: number;
  readonly maxWaitingClients: number;
  readonly testOnBorrow: boolean;
  readonly acquireTimeoutMillis: number;
  readonly priorityRange: number;
  readonly autostart: boolean;
  readonly promise: PromiseLibrary | null;
}

/** A caller in `acquire()`: in its priority's line of Lifeguard's own wait queue (lazy deletion, one alarm for all lines). */
interface Waiter<T> extends QueuedWaiter {
  readonly resolve: (resource: T) => void;
  readonly reject: (error: Error) => void;
}

/** One Lifeguard acquire in flight on behalf of whichever compat waiter is first in line when it resolves. */
interface SupplyRequest {
  readonly controller: AbortController;
  /** Still counted as supply: false once it resolved, failed, or was cancelled. */
  live: boolean;
}

function booleanOption(source: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = source[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(key, `invalid option "${key}": expected a boolean, got ${describe(value)}`);
  return value;
}

function resolveConfig<T>(factory: Factory<T>, options: Options | undefined | null): Config {
  if (typeof factory !== 'object' || (factory as unknown) === null) {
    throw new InvalidOptionError('factory', `invalid factory: expected an object with create() and destroy(), got ${describe(factory)}`);
  }
  const hooks = factory as unknown as Record<string, unknown>;
  for (const fn of ['create', 'destroy']) {
    if (typeof hooks[fn] !== 'function') throw new InvalidOptionError(`factory.${fn}`, `invalid option "factory.${fn}": expected a function, got ${describe(hooks[fn])}`);
  }
  if (hooks['validate'] !== undefined && typeof hooks['validate'] !== 'function') {
    throw new InvalidOptionError('factory.validate', `invalid option "factory.validate": expected a function or undefined, got ${describe(hooks['validate'])}`);
  }
  const given: unknown = options ?? {};
  if (typeof given !== 'object' || given === null) throw new InvalidOptionError('options', `invalid options: expected an object, got ${describe(given)}`);
  const keys = given as Record<string, unknown>;
  for (const key of FACTORY_V2_KEYS) {
    if (key in keys) {
      const ours = key === 'validateAsync' ? 'validate (returning a promise)' : key;
      throw new InvalidOptionError(key, `invalid option "${key}": generic-pool 2 took the factory's functions in its options; in generic-pool 3 it is factory.${ours}, and this layer would ignore it here (got ${describe(keys[key])})`);
    }
  }
  const name = keys['name'];
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw new InvalidOptionError('name', `invalid option "name": expected a non-empty string, got ${describe(name)}`);
  }
  const ignored = IGNORED_V2_KEYS.filter((key) => key in keys);
  const current = Object.fromEntries(Object.entries(keys).filter(([key]) => key !== 'name' && !ignored.includes(key)));
  rejectUnknownKeys(current, OPTION_KEYS, 'generic-pool compat createPool()');
  if (ignored.length > 0 && !warnedIgnored) {
    warnedIgnored = true;
    process.emitWarning(`generic-pool compat createPool(): generic-pool 2 option${ignored.length > 1 ? 's' : ''} ${ignored.map((k) => `"${k}"`).join(', ')} ${ignored.length > 1 ? 'have' : 'has'} no effect in generic-pool 3, nor here (printed once per process)`, { code: 'LIFEGUARD_COMPAT_IGNORED' });
  }
  // generic-pool's own defaults are null, so null means "not set" here too.
  const source: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(current)) if (value !== null) source[key] = value;

  const max = numberOption(source, 'max', 1, { integer: true, min: 1 });
  const min = numberOption(source, 'min', 0, { integer: true, min: 0 });
  if (min > max) {
    // generic-pool would silently lower min to max (and max defaults to 1, so `{ min: 5 }` alone means 1).
    throw new InvalidOptionError('min', `invalid option "min": must be <= max (${max}${source['max'] === undefined ? ', the default' : ''}), got number ${min}; generic-pool silently clamped min to max, Lifeguard rejects it`);
  }
  const testOnBorrow = booleanOption(source, 'testOnBorrow', false);
  if (testOnBorrow && hooks['validate'] === undefined) {
    throw new InvalidOptionError('testOnBorrow', 'invalid option "testOnBorrow": it calls factory.validate, which is not given (got boolean true)');
  }
  booleanOption(source, 'testOnReturn', false);
  booleanOption(source, 'fifo', true);
  // Zero means "not set" for these, exactly as generic-pool's `opts.x || default` reads them.
  const acquireTimeoutMillis = numberOption(source, 'acquireTimeoutMillis', 0, { min: 0, allowInfinity: true });
  numberOption(source, 'destroyTimeoutMillis', 0, { min: 0, allowInfinity: true });
  const priorityRange = numberOption(source, 'priorityRange', 1, { integer: true, min: 0 }) || 1;
  numberOption(source, 'evictionRunIntervalMillis', 0, { min: 0, allowInfinity: true });
  numberOption(source, 'numTestsPerEvictionRun', 3, { integer: true, min: 0 });
  const soft = source['softIdleTimeoutMillis'];
  if (soft !== undefined && (typeof soft !== 'number' || Number.isNaN(soft))) {
    throw new InvalidOptionError('softIdleTimeoutMillis', `invalid option "softIdleTimeoutMillis": expected a number (<= 0: off), got ${describe(soft)}`);
  }
  numberOption(source, 'idleTimeoutMillis', 30_000, { min: 0, allowInfinity: true });
  const promise = source['Promise'];
  if (promise !== undefined && (typeof promise !== 'function' || typeof (promise as Partial<PromiseLibrary>).resolve !== 'function')) {
    throw new InvalidOptionError('Promise', `invalid option "Promise": expected a Promise constructor with a static resolve(), got ${describe(promise)}`);
  }
  return {
    max,
    min,
    maxWaitingClients: numberOption(source, 'maxWaitingClients', Infinity, { integer: true, min: 0, allowInfinity: true }),
    testOnBorrow,
    acquireTimeoutMillis,
    priorityRange,
    autostart: booleanOption(source, 'autostart', true),
    promise: promise === undefined || promise === Promise ? null : (promise as unknown as PromiseLibrary),
  };
}

/** The Lifeguard options that reproduce generic-pool's behaviour for `options`. */
function innerOptions<T>(name: string, config: Config, options: Record<string, unknown>, factory: LifeguardFactory<T>): PoolOptions<T> {
  const positive = (key: string): number => {
    const value = options[key];
    return typeof value === 'number' && value > 0 ? value : 0;
  };
  const destroyTimeoutMs = positive('destroyTimeoutMillis');
  const evicting = positive('evictionRunIntervalMillis') > 0;
  const hard = positive('idleTimeoutMillis') || 30_000;
  const soft = positive('softIdleTimeoutMillis');
  const idle = Math.min(hard, soft || Infinity);
  return {
    factory,
    name,
    max: config.max,
    min: config.min,
    // The compat layer queues by priority and keeps its own deadlines and waiting limit: Lifeguard's queue
    // only ever holds this layer's supply requests.
    acquireTimeoutMs: Infinity,
    maxWaiting: Infinity,
    // generic-pool starts every creation it needs at once.
    maxConcurrentCreates: config.max,
    ...(destroyTimeoutMs > 0 ? { destroyTimeoutMs } : {}),
    // generic-pool evicts only when its evictor runs, and never retires a resource for age.
    idleTimeoutMs: evicting && idle !== Infinity ? idle : 0,
    maxLifetimeMs: 0,
    idleOrder: options['fifo'] === false ? 'lifo' : 'fifo',
  };
}

/**
 * generic-pool's `Pool`, backed by a Lifeguard pool. Build it with {@link createPool}.
 *
 * Lifeguard serves waiters strictly first-in first-out, so priorities live here: every waiting
 * `acquire()` is matched by one Lifeguard acquire ("supply request"), and whichever supply request is
 * granted first goes to the highest-priority, oldest compat waiter at that moment. Surplus supply requests
 * (after a timeout) are cancelled through their AbortSignal, so Lifeguard never creates for a waiter that
 * is gone.
 */
export class Pool<T> extends EventEmitter {
  readonly #factory: Factory<T>;
  readonly #config: Config;
  readonly #innerOptions: PoolOptions<T>;
  readonly #destroyTimeoutMs: number;
  readonly #validateTimeoutMs: number;
  #inner: LifeguardPool<T> | null = null;
  #started = false;
  #draining = false;
  /** clear() ran while a drain was still in progress: close Lifeguard's pool once the drain completes. */
  #closeWhenDrained = false;

  /** One line per priority, every deadline on one alarm. */
  readonly #queue: WaitQueue<Waiter<T>>;
  readonly #supply = new Deque<SupplyRequest>();
  /** Leases held while factory.validate runs (testOnBorrow): supply already on its way to a waiter. */
  #validating = 0;
  readonly #validatingResources = new Set<T>();
  /** Loans keyed by the borrowed resource itself, as generic-pool keys them. */
  readonly #loans = new Map<T, Lease<T>>();
  /** Every live resource, with Lifeguard's handle to destroy it from outside (used by clear()). */
  readonly #resources = new Map<T, (reason?: unknown) => void>();
  readonly #creates = new Set<Promise<void>>();
  readonly #destroys = new Set<Promise<void>>();
  readonly #watchers = new Set<() => void>();
  #lastCreateError: unknown = undefined;
  readonly #startGate: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void };

  constructor(factory: Factory<T>, options?: Options) {
    super();
    this.#config = resolveConfig(factory, options);
    this.#factory = factory;
    // Ref'd deadlines, as generic-pool's timers: a caller is waiting, it must get its timeout rather than a silent exit.
    const timeoutMs = this.#config.acquireTimeoutMillis > 0 ? this.#config.acquireTimeoutMillis : Infinity;
    const owner: WaitQueueOwner<Waiter<T>> = {
      expired: (waiter) => {
        this.#timeOut(waiter);
      },
      aborted: () => undefined, // no signal: generic-pool's acquire() takes none
      now: () => systemClock.now(),
    };
    this.#queue = new WaitQueue<Waiter<T>>(systemClock, timeoutMs, owner, this.#config.priorityRange);
    const named = (options as { name?: unknown } | null | undefined)?.name;
    this.#innerOptions = innerOptions(typeof named === 'string' ? named : `generic-pool-${++poolCounter}`, this.#config, (options ?? {}) as Record<string, unknown>, this.#lifeguardFactory());
    // Validated now even when autostart is false, so a bad configuration fails at construction, not at
    // the first acquire.
    const resolved = resolvePoolOptions(this.#innerOptions);
    this.#destroyTimeoutMs = resolved.destroyTimeoutMs;
    this.#validateTimeoutMs = resolved.validateTimeoutMs;
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    this.#startGate = { promise, resolve, reject };
    if (this.#config.autostart) this.start();
  }

  /** The Lifeguard pool underneath (null until started): its stats(), leases() and events. */
  get lifeguard(): LifeguardPool<T> | null {
    return this.#inner;
  }

  /** Resources alive or being created (not those being destroyed). */
  get size(): number {
    const stats = this.#inner?.stats();
    return stats === undefined ? 0 : stats.size + stats.creating;
  }

  /** Idle resources. */
  get available(): number {
    return this.#inner?.stats().idle ?? 0;
  }

  get borrowed(): number {
    return this.#loans.size;
  }

  /** Acquires waiting. */
  get pending(): number {
    return this.#queue.pending;
  }

  get spareResourceCapacity(): number {
    return this.#config.max - this.size;
  }

  get max(): number {
    return this.#config.max;
  }

  get min(): number {
    return this.#config.min;
  }

  /** Creates the Lifeguard pool, which starts filling up to `min`. A no-op once started or draining. */
  start(): void {
    if (this.#draining || this.#started) return;
    this.#started = true;
    const inner = new LifeguardPool<T>(this.#innerOptions);
    inner.on('createError', ({ error }) => {
      this.#lastCreateError = error;
      this.emit('factoryCreateError', error);
    });
    inner.on('create', () => {
      this.#lastCreateError = undefined;
    });
    inner.on('destroyError', ({ error }) => {
      // generic-pool's message first, for code that matches on it; Lifeguard's account (pool, limit) after.
      if (error instanceof DestroyTimeoutError) this.emit('factoryDestroyError', new DestroyTimeoutError(`destroy timed out: ${error.message}`, { cause: error }));
      else this.emit('factoryDestroyError', error);
    });
    this.#inner = inner;
    this.#startGate.resolve();
  }

  /**
   * Resolves with a resource. Lower `priority` is served first (0 is highest; out of range means lowest),
   * first-in first-out within a priority.
   */
  acquire(priority?: number): Promise<T> {
    return this.#wrap(this.#acquire(priority));
  }

  /** Runs `fn` with a resource: released when `fn` resolves, destroyed when it rejects or throws. */
  use<U>(fn: (resource: T) => U | PromiseLike<U>, priority?: number): Promise<U> {
    return this.#wrap(this.#acquire(priority).then((resource) => {
      return attempt(() => fn(resource)).then(
        (value) => {
          this.#end(resource, false);
          return value;
        },
        (error: unknown) => {
          this.#end(resource, true);
          throw error;
        },
      );
    }));
  }

  isBorrowedResource(resource: T): boolean {
    return this.#loans.has(resource);
  }

  /** Returns a borrowed resource. Rejects with `Resource not currently part of this pool` otherwise. */
  release(resource: T): Promise<void> {
    const lease = this.#loans.get(resource);
    if (lease === undefined) return this.#wrap(Promise.reject(this.#notBorrowed(resource)));
    this.#end(resource, false);
    return this.#wrap(Promise.resolve());
  }

  /** Destroys a borrowed resource. Rejects with `Resource not currently part of this pool` otherwise. */
  destroy(resource: T): Promise<void> {
    const lease = this.#loans.get(resource);
    if (lease === undefined) return this.#wrap(Promise.reject(this.#notBorrowed(resource)));
    this.#end(resource, true);
    return this.#wrap(Promise.resolve());
  }

  /**
   * Stops accepting acquires (they reject with `pool is draining and cannot accept work`); resolves once
   * every waiter is served or timed out and every borrowed resource is back. Idle resources stay until
   * clear().
   */
  drain(): Promise<void> {
    this.#draining = true;
    if (!this.#started) this.#startGate.reject(new PoolClosedError(`${DRAINING}: it was drained before it started`));
    const drained = this.#until(() => this.#isDrained()).then(async () => {
      if (this.#closeWhenDrained && this.#inner !== null) await this.#inner.close();
    });
    return this.#wrap(drained);
  }

  /**
   * Waits for creations in flight, then destroys idle resources and waits for those destroys. On a drained
   * pool it closes the Lifeguard pool, which leaves no timer or listener behind.
   */
  clear(): Promise<void> {
    return this.#wrap(this.#clear());
  }

  /** Resolves once `min` resources exist. Keeps waiting through creation failures (Lifeguard retries). */
  ready(): Promise<void> {
    if (this.#config.min === 0) return this.#wrap(Promise.resolve());
    return this.#wrap(this.#startGate.promise.then(() => this.#innerReady()));
  }

  // ---------------------------------------------------------------------------------------------------

  #wrap<V>(promise: Promise<V>): Promise<V> {
    return this.#config.promise === null ? promise : (this.#config.promise.resolve(promise) as Promise<V>);
  }

  #acquire(priority: unknown): Promise<T> {
    if (!this.#started) this.start();
    if (this.#draining) return Promise.reject(new PoolClosedError(DRAINING));
    const config = this.#config;
    if (this.#queue.pending >= config.maxWaitingClients && this.spareResourceCapacity < 1 && this.available < 1) {
      return Promise.reject(new QueueFullError('max waitingClients count exceeded'));
    }
    return new Promise<T>((resolve, reject) => {
      const ms = config.acquireTimeoutMillis;
      const waiter: Waiter<T> = { resolve, reject, enqueuedAt: systemClock.now(), timeoutMs: ms > 0 ? ms : Infinity, signal: undefined, onAbort: undefined, settled: false };
      this.#queue.add(waiter, slotOf(priority, config.priorityRange));
      this.#balance();
    });
  }

  #timeOut(waiter: Waiter<T>): void {
    if (waiter.settled) return;
    this.#settle(waiter);
    const cause = this.#lastCreateError;
    waiter.reject(new TimeoutError('ResourceRequest timed out', cause === undefined ? undefined : { cause }));
    this.#balance();
    this.#notify();
  }

  /** Ends a waiter's wait (the queue drops its deadline, and the alarm when nobody is left). */
  #settle(waiter: Waiter<T>): void {
    this.#queue.settle(waiter);
  }

  /** Highest priority first, oldest first within a priority; still in line until settled. */
  #nextWaiter(): Waiter<T> | undefined {
    return this.#queue.next();
  }

  /** Keeps exactly one supply request (or validation) per waiter: adds the missing, cancels the surplus. */
  #balance(): void {
    const inner = this.#inner;
    if (inner === null) return;
    if (inner.closed) {
      let waiter: Waiter<T> | undefined;
      while ((waiter = this.#nextWaiter()) !== undefined) {
        this.#settle(waiter);
        waiter.reject(new PoolClosedError(DRAINING));
      }
      return;
    }
    while (this.#supply.length + this.#validating < this.#queue.pending) this.#request(inner);
    let surplus = this.#supply.length + this.#validating - this.#queue.pending;
    // The newest request is the furthest back in Lifeguard's queue: cancelling it disturbs nobody.
    for (let request: SupplyRequest | undefined; surplus > 0 && (request = this.#supply.pop()) !== undefined; surplus--) {
      request.live = false;
      request.controller.abort();
    }
  }

  #request(inner: LifeguardPool<T>): void {
    const request: SupplyRequest = { controller: new AbortController(), live: true };
    this.#supply.push(request);
    inner.acquire({ signal: request.controller.signal }).then(
      (lease) => {
        this.#onLease(request, lease);
      },
      (error: unknown) => {
        this.#onSupplyError(request, error);
      },
    );
  }

  #unlive(request: SupplyRequest): void {
    if (!request.live) return;
    request.live = false;
    this.#supply.remove(request);
  }

  #onLease(request: SupplyRequest, lease: Lease<T>): void {
    // A cancelled request may still resolve (Lifeguard granted it just before the abort): its lease is
    // handed out like any other, and #balance cancels one more request instead.
    this.#unlive(request);
    if (this.#config.testOnBorrow && lease.active) this.#validate(lease);
    else this.#dispatch(lease);
  }

  #onSupplyError(request: SupplyRequest, error: unknown): void {
    this.#unlive(request);
    if (request.controller.signal.aborted && error instanceof LifeguardError && error.code === ErrorCodes.ACQUIRE_ABORTED) return;
    // Not ours to ignore (the Lifeguard pool closed under us): fail the waiter this request stood for,
    // rather than leave it waiting for supply that will never come.
    const waiter = this.#nextWaiter();
    if (waiter !== undefined) {
      this.#settle(waiter);
      waiter.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#balance();
    this.#notify();
  }

  #dispatch(lease: Lease<T>): void {
    if (!lease.active) {
      this.#balance();
      this.#notify();
      return;
    }
    const waiter = this.#nextWaiter();
    if (waiter === undefined) {
      lease.release();
    } else {
      this.#settle(waiter);
      const resource = lease.resource;
      this.#loans.set(resource, lease);
      waiter.resolve(resource);
    }
    this.#balance();
    this.#notify();
  }

  /**
   * testOnBorrow, as generic-pool does it: every hand-over is validated, fresh resources and ones released
   * to a waiting caller included, and only an explicit `false` fails (a rejection fails too, where
   * generic-pool would leave the resource stuck in its test set).
   */
  #validate(lease: Lease<T>): void {
    const resource = lease.resource;
    this.#validating++;
    this.#validatingResources.add(resource);
    const verdict = new Promise<{ ok: boolean; error: unknown }>((resolve) => {
      const ms = this.#validateTimeoutMs;
      const timer = ms > MAX_TIMER_MS ? null : setTimeout(() => {
        resolve({ ok: false, error: new Error(`factory.validate did not settle within ${ms} ms (testOnBorrow)`) });
      }, ms);
      timer?.unref();
      // unknown, not boolean: JavaScript factories return anything, and only `false` fails.
      const result = attempt<unknown>(() => this.#factory.validate?.(resource) ?? true);
      void result.then(
        (ok) => {
          resolve({ ok: ok !== false, error: ok === false ? new Error('factory.validate returned false (testOnBorrow)') : undefined });
        },
        (error: unknown) => {
          resolve({ ok: false, error });
        },
      ).finally(() => {
        if (timer !== null) clearTimeout(timer);
      });
    });
    void verdict.then(({ ok, error }) => {
      this.#validating--;
      this.#validatingResources.delete(resource);
      if (ok || !lease.active) {
        this.#dispatch(lease);
        return;
      }
      lease.destroy(error);
      this.#balance();
      this.#notify();
    });
  }

  /** Ends the loan of `resource`, if it is still out (use() tolerates a fn that released it itself). */
  #end(resource: T, destroy: boolean): void {
    const lease = this.#loans.get(resource);
    if (lease === undefined) return;
    this.#loans.delete(resource);
    // Inactive only if Lifeguard already took it back (its pool closed): nothing left to return.
    if (lease.active) {
      if (destroy) lease.destroy();
      else lease.release();
    }
    this.#notify();
  }

  #notBorrowed(resource: T): Error {
    // Same message as generic-pool for both; the class and code say which mistake it was.
    return this.#resources.has(resource) ? new DoubleReleaseError(NOT_IN_POOL) : new ForeignLeaseError(NOT_IN_POOL);
  }

  #isDrained(): boolean {
    return this.#queue.pending === 0 && this.#loans.size === 0 && this.#validating === 0;
  }

  async #clear(): Promise<void> {
    await Promise.all([...this.#creates]);
    const inner = this.#inner;
    if (inner === null) return;
    if (this.#draining && this.#isDrained()) {
      await inner.close();
      return;
    }
    if (this.#draining) this.#closeWhenDrained = true;
    const cleared = new Error('destroyed by clear()');
    for (const [resource, invalidate] of [...this.#resources]) {
      // Lifeguard destroys an idle resource at once; one it has just lent (not yet handed to a caller) is
      // destroyed when that loan ends.
      if (!this.#loans.has(resource) && !this.#validatingResources.has(resource)) invalidate(cleared);
    }
    await Promise.all([...this.#destroys]);
  }

  async #innerReady(): Promise<void> {
    const inner = this.#inner as LifeguardPool<T>;
    for (;;) {
      try {
        await inner.ready();
        return;
      } catch (error) {
        // A failed creation rejects Lifeguard's ready(); generic-pool's keeps waiting, and Lifeguard keeps
        // retrying with backoff (its retry timer keeps the process alive while ready() is awaited), so
        // wait for the next attempt. Only a closed pool ends the wait.
        if (inner.closed) throw error;
      }
    }
  }

  #until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (!done()) return;
        this.#watchers.delete(check);
        resolve();
      };
      this.#watchers.add(check);
    });
  }

  #notify(): void {
    for (const check of [...this.#watchers]) check();
  }

  /** generic-pool's factory, adapted to Lifeguard's: no arguments, `this` bound, and operations tracked for clear(). */
  #lifeguardFactory(): LifeguardFactory<T> {
    const factory = this.#factory;
    return {
      create: (context: CreateContext): Promise<T> => {
        const result = attempt(() => factory.create());
        // clear() waits for creations in flight; Lifeguard's abort (create timeout, close) ends the wait.
        const settled = new Promise<void>((resolve) => {
          const onAbort = (): void => {
            resolve();
          };
          context.signal.addEventListener('abort', onAbort, { once: true });
          void result.then(() => undefined, () => undefined).finally(() => {
            context.signal.removeEventListener('abort', onAbort);
            resolve();
          });
        });
        this.#creates.add(settled);
        void settled.then(() => this.#creates.delete(settled));
        return result.then((resource) => {
          this.#resources.set(resource, (reason) => {
            context.invalidate(reason);
          });
          return resource;
        });
      },
      destroy: (resource: T): Promise<void> => {
        this.#resources.delete(resource);
        const result = attempt(() => factory.destroy(resource)).then(() => undefined);
        // Bounded like Lifeguard's own wait (destroyTimeoutMs), so clear() cannot hang on a stuck destroy.
        const settled = new Promise<void>((resolve) => {
          const ms = this.#destroyTimeoutMs;
          const timer = ms > MAX_TIMER_MS ? null : setTimeout(resolve, ms);
          timer?.unref();
          void result.then(() => undefined, () => undefined).finally(() => {
            if (timer !== null) clearTimeout(timer);
            resolve();
          });
        });
        this.#destroys.add(settled);
        void settled.then(() => this.#destroys.delete(settled));
        return result;
      },
    };
  }
}

/** Calls `fn` now, a synchronous throw becoming a rejection: a factory that throws must not break the pool. */
function attempt<V>(fn: () => V | PromiseLike<V>): Promise<V> {
  return new Promise<V>((resolve) => {
    resolve(fn());
  });
}

/** generic-pool's PriorityQueue slot: non-numbers and 0 are top priority; out-of-range means the lowest. */
function slotOf(priority: unknown, range: number): number {
  // generic-pool's own coercion, kept exact: `(priority && +priority | 0) || 0`.
  let slot = (priority ? Number(priority) | 0 : 0) || 0;
  if (slot !== 0 && (slot < 0 || slot >= range)) slot = range - 1;
  return slot;
}

/** generic-pool's entry point. */
export function createPool<T>(factory: Factory<T>, options?: Options): Pool<T> {
  return new Pool<T>(factory, options);
}

export default { createPool, Pool };
