import { Socket } from 'node:net';
import { systemClock, wallTime, type Clock, type TimerHandle } from '../internal/clock.js';
import { Deque } from '../internal/deque.js';
import { TypedEmitter, type Listener } from '../internal/emitter.js';
import { MinHeap } from '../internal/heap.js';
import { settle } from '../internal/call.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import { LeakDetector, NO_LEAK_DETECTION, type LeakTracking } from '../leak/leak-detector.js';
import type { AcquireSite } from '../leak/site.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  CreateTimeoutError,
  CreateUnwantedError,
  DestroyTimeoutError,
  ForeignLeaseError,
  InvalidOptionError,
  PoolClosedError,
  QueueFullError,
  ValidationTimeoutError,
} from './errors.js';
import type { LeaseInfo, LeakReport, PoolEvents } from './events.js';
import { Lease, kEntry, kOwner } from './lease.js';
import { resolvePoolOptions, describe, numberOption, rejectUnknownKeys, type AcquireOptions, type CreateContext, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { DESTROY_REASONS, EntryState, PoolEntry, type DestroyReason, type EntryOwner } from './pool-entry.js';
import type { PoolStats } from './stats.js';
import { withBudget } from './budget-option.js';
import { channels, type PoolInspection, type ResourceInfo } from './diagnostics.js';
import { registerPool, unregisterPool } from './registry.js';

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** One caller waiting in `acquire()`. Settled waiters stay in the queues until reached (lazy deletion). */
/**
 * @internal Receives an acquire's outcome without a promise: `lifeguard/http` acquires once per request,
 * and a promise, its resolving functions, its `then` callbacks and two microtask hops are a measurable
 * share of that hot path. Called synchronously, possibly from inside another lease's release: a receiver
 * must not throw and should do little before returning.
 */
export interface AcquireReceiver<T> {
  /** `now`: the pool's clock reading when it lent the resource, so the receiver need not read it again. */
  onLease(lease: Lease<T>, now: number): void;
  onAcquireError(error: Error): void;
}

/**
 * @internal `pool[kAcquireInto](receiver, options, now)`: `acquire()` for an {@link AcquireReceiver}; `now`,
 * when given, is a clock reading the caller has just taken, used instead of another.
 */
export const kAcquireInto = Symbol('lifeguard.acquireInto');

/**
 * @internal `pool[kHandOff](lease)`: passes a lent resource straight to the oldest waiter when that waiter
 * is a receiver, instead of a release and a new lend: the lease stays out and changes hands (the receiver
 * gets the same lease object). True when handed off; false when it cannot be (nobody waiting, a promise
 * first in line, the pool closing, the resource doomed, revoked or past its lifetime, a reset hook to run,
 * leak tracking on): then release the lease as usual. For `lifeguard/http`, whose requests queue behind
 * busy connections: one pass per request instead of a release, a lend and a new lease.
 */
export const kHandOff = Symbol('lifeguard.handOff');

/** @internal `pool[kWaiting](max)`: the receivers of the acquires waiting, oldest first (promises excluded), at most `max`. */
export const kWaiting = Symbol('lifeguard.waiting');

/**
 * @internal `pool[kReading]`: the pool's latest clock reading. Just after a lease ended it is the reading
 * the release took (precise when the factory has `validate`), which a holder can use as "idle since".
 */
export const kReading = Symbol('lifeguard.reading');

/** @internal `pool[kWithdraw](receiver)`: gives up a receiver's wait without telling it (its request already failed). */
export const kWithdraw = Symbol('lifeguard.withdraw');

/** One caller waiting in `acquire()`; for a promise it is its own receiver. */
interface Waiter<T> extends AcquireReceiver<T> {
  receiver: AcquireReceiver<T>;
  readonly enqueuedAt: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly site: AcquireSite | null;
  readonly label: string | undefined;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

interface CreateAttempt<T> {
  readonly controller: AbortController;
  /** Aborted when no waiter needs this creation any more (CreateContext.unwanted). */
  readonly unwanted: AbortController;
  readonly startedAt: number;
  timer: TimerHandle | null;
  /** Creation already counted as failed (timed out, or the pool was destroyed). */
  abandoned: boolean;
  /** The resource was reported broken (invalidate or revoke) before its creation finished. */
  invalidated: { reason: unknown } | null;
  entry: PoolEntry<T> | null;
}

/** Options of `close()`. */
export interface CloseOptions {
  /** How long to wait for outstanding leases before destroying their resources. @default 30000 */
  readonly timeoutMs?: number;
}

/** What `close()` and `destroy()` resolve with. */
export interface CloseReport {
  /** Leases still out when the pool gave up waiting; their resources were destroyed. */
  readonly outstanding: readonly LeaseInfo[];
  /** Resources whose `factory.destroy` did not settle within `destroyTimeoutMs`. */
  readonly destroyTimeouts: number;
}

/**
 * A generic resource pool that cannot leak a handle, cannot hang, and says what is wrong when it is
 * exhausted.
 *
 * Every state change ends in {@link Pool.#pump}, the one scheduling function: it hands idle resources to
 * waiters in arrival order, starts validations, and starts creations when (and only when) waiters or
 * `min` need them. Background work runs on the process-wide {@link Housekeeper}.
 */
export class Pool<T> {
  readonly #o: ResolvedPoolOptions<T>;
  readonly #clock: Clock;
  readonly #events: TypedEmitter<PoolEvents<T>>;
  readonly #owner: EntryOwner<T>;
  readonly #leak: LeakTracking;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  readonly #lifo: boolean;

  /** Every live resource: idle, lent, being validated or reset. */
  readonly #all = new Set<PoolEntry<T>>();
  readonly #idle = new Deque<PoolEntry<T>>();
  readonly #waiters = new Deque<Waiter<T>>();
  /** Waiters with the pool's default timeout: their deadlines are already in arrival order. */
  readonly #defaultDeadlines = new Deque<Waiter<T>>();
  /** Waiters with a per-call timeout, ordered by deadline. */
  readonly #customDeadlines = new MinHeap<Waiter<T>>((w) => w.deadline);
  readonly #creates = new Set<CreateAttempt<T>>();
  readonly #destroys = new Set<Promise<void>>();

  #state = OPEN;
  #pending = 0;
  /** Validations on borrow: supply already on its way to the queue, so creation must not double it. */
  #validatingForQueue = 0;
  #probing = 0;
  /** Returned resources being reset: like validations, supply about to reach the queue. */
  #resetting = 0;
  #entrySeq = 0;
  #leaseSeq = 0;
  #pumping = false;
  /** False until the first listener is added: the hot path then skips event checks with one boolean read. */
  #listening = false;
  /**
   * A cheap timestamp for the hot path: reading the clock costs more than the rest of an acquire and
   * release together. Refreshed by every housekeeping run and every precise read (#now); it lags real
   * time by at most one housekeeping period, which bounds the error of lease ages and idle times.
   */
  #coarseNow: number;
  /** Validation and keep-alive compare idle times against small thresholds: they need exact stamps. */
  readonly #preciseIdle: boolean;
  #pumpAgain = false;
  /** Acquires until the next call-site capture (leak detection's sampling, counted here: no call per acquire). */
  #captureIn: number;
  /** True while a lease is being handed to a receiver; grants made meanwhile wait in #deliveries. */
  #delivering = false;
  /** Pairs of (receiver, lease) granted during a delivery, handed out by the outermost one. */
  readonly #deliveries: (AcquireReceiver<T> | Lease<T> | number)[] = [];
  /** True while #coarseNow is a precise read taken in the current batch of synchronous work (#batchNow). */
  #batchStamp = false;

  #deadlineTimer: TimerHandle | null = null;
  #deadlineTimerAt = Infinity;

  #consecutiveCreateFailures = 0;
  #lastCreateError: unknown = undefined;
  #backoffUntil = -Infinity;
  #backoffTimer: TimerHandle | null = null;
  /** Whether the backoff timer keeps the process alive (someone awaits the retry). */
  #backoffRef = false;

  #minReached = false;
  #ready: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;
  #closePromise: Promise<CloseReport> | null = null;
  #closeWake: (() => void) | null = null;
  #destroyCause: unknown = undefined;
  #destroyTimeouts = 0;

  readonly #counters = {
    created: 0,
    createErrors: 0,
    acquired: 0,
    released: 0,
    timeouts: 0,
    aborted: 0,
    rejectedQueueFull: 0,
    validationFailures: 0,
    leaks: 0,
    dropped: 0,
    revoked: 0,
    destroyed: Object.fromEntries(DESTROY_REASONS.map((r) => [r, 0])) as Record<DestroyReason, number>,
  };

  constructor(options: PoolOptions<T>) {
    // The budget option wraps the factory: a permit before each create, given back after each destroy.
    this.#o = withBudget(resolvePoolOptions(options));
    this.#clock = this.#o.clock ?? systemClock;
    this.#lifo = this.#o.idleOrder === 'lifo';
    this.#coarseNow = this.#clock.now();
    this.#preciseIdle = this.#o.factory.validate !== undefined;
    this.#events = new TypedEmitter<PoolEvents<T>>((error, event) => {
      process.emitWarning(`a listener for pool "${this.#o.name}" event "${event}" threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { code: 'LIFEGUARD_LISTENER' });
    });
    const clock = this.#clock;
    this.#owner = {
      name: this.#o.name,
      now: () => clock.now(),
      stamp: () => this.#coarseNow,
      settle: (entry, destroy, cause) => {
        this.#settle(entry, destroy, cause);
      },
    };
    this.#leak = this.#o.leakDetection === 'off'
      ? NO_LEAK_DETECTION
      : new LeakDetector(this.#o.leakDetection, this.#o.leakSampleRate, (token) => {
        this.#onLeaseDropped(token as DroppedToken<T>);
      });
    this.#captureIn = this.#leak.nextCapture(this.#coarseNow);
    this.#housekeeper = Housekeeper.for(this.#clock);
    this.#task = {
      periodMs: this.#o.housekeepingIntervalMs,
      run: (now) => {
        this.#coarseNow = now;
        this.#housekeep(now);
      },
    };
    this.#housekeeper.register(this.#task);
    registerPool(this as Pool<unknown>);
    if (channels.open.hasSubscribers) channels.open.publish({ pool: this, name: this.#o.name });
    if (this.#o.min === 0) this.#minReached = true;
    else this.#pump();
  }

  /** The pool's name, as used in messages and events. */
  get name(): string {
    return this.#o.name;
  }

  /** The resolved options (defaults filled in). */
  get options(): ResolvedPoolOptions<T> {
    return this.#o;
  }

  /** True once `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.#state !== OPEN;
  }

  on<K extends keyof PoolEvents<T>>(event: K, listener: Listener<PoolEvents<T>[K]>): this {
    this.#listening = true;
    this.#events.on(event, listener);
    return this;
  }

  once<K extends keyof PoolEvents<T>>(event: K, listener: Listener<PoolEvents<T>[K]>): this {
    this.#listening = true;
    this.#events.once(event, listener);
    return this;
  }

  off<K extends keyof PoolEvents<T>>(event: K, listener: Listener<PoolEvents<T>[K]>): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Resolves once `min` resources exist; rejects with the creation error if the first attempt to get there fails. */
  ready(): Promise<void> {
    if (this.#minReached) return Promise.resolve();
    if (this.#state !== OPEN) return Promise.reject(this.#closedError('wait for ready() on'));
    if (this.#ready === null) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#ready = { promise, resolve, reject };
      this.#refBackoff();
    }
    return this.#ready.promise;
  }

  /**
   * Borrows a resource. Waiters are served first-in first-out; the deadline (`timeoutMs`, default
   * `acquireTimeoutMs`) covers queueing, creation and validation.
   */
  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    return this.#acquire(options, this.acquire, null) as Promise<Lease<T>>;
  }

  /**
   * @internal Withdraws the waiting acquire of `receiver`, if any, so that the pool stops creating for a
   * request that already failed. A scan of the queue: for failure paths only.
   */
  [kWithdraw](receiver: AcquireReceiver<T>): boolean {
    for (const waiter of this.#waiters.toArray()) {
      if (!waiter.settled && waiter.receiver === receiver) {
        this.#unqueue(waiter);
        return true;
      }
    }
    return false;
  }

  /** @internal See {@link AcquireReceiver}. */
  [kAcquireInto](receiver: AcquireReceiver<T>, options?: AcquireOptions, now?: number): void {
    // With a receiver nothing is returned: the outcome goes to the receiver.
    void this.#acquire(options, this[kAcquireInto], receiver, now);
  }

  /** @internal See {@link kWaiting}. A scan of the queue: for failure and shutdown paths only. */
  [kWaiting](max = Infinity): AcquireReceiver<T>[] {
    const receivers: AcquireReceiver<T>[] = [];
    const waiters = this.#waiters;
    for (let i = 0; i < waiters.length && receivers.length < max; i++) {
      const waiter = waiters.at(i) as Waiter<T>;
      if (!waiter.settled && waiter.receiver !== waiter) receivers.push(waiter.receiver);
    }
    return receivers;
  }

  /** @internal See {@link kReading}. */
  get [kReading](): number {
    return this.#coarseNow;
  }

  /** @internal See {@link kHandOff}. */
  [kHandOff](lease: Lease<T>): boolean {
    if (this.#pending === 0 || this.#state !== OPEN || this.#leak.enabled || this.#o.factory.reset !== undefined) return false;
    const entry = lease[kEntry];
    if (entry.owner !== this.#owner || entry.state !== EntryState.LEASED || entry.doomed !== null || entry.revoked !== null || !lease.active) return false;
    const waiter = this.#nextWaiter();
    if (waiter === undefined || waiter.receiver === waiter) return false;
    const now = this.#now();
    if (entry.expiresAt <= now) return false;
    const heldMs = now - entry.acquiredAt;
    this.#unqueue(waiter);
    this.#counters.released++;
    this.#counters.acquired++;
    entry.uses++;
    entry.acquiredAt = now;
    entry.site = waiter.site;
    entry.label = waiter.label;
    entry.leakReportedAt = 0;
    if (this.#listening) {
      if (this.#events.hasListeners('release')) this.#events.emit('release', { pool: this.#o.name, leaseId: entry.leaseId, heldMs });
      if (this.#events.hasListeners('acquire')) this.#events.emit('acquire', { pool: this.#o.name, lease, waitedMs: now - waiter.enqueuedAt });
    }
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this, name: this.#o.name, leaseId: entry.leaseId, resourceId: entry.id, heldMs });
    if (channels.acquire.hasSubscribers) channels.acquire.publish({ pool: this, name: this.#o.name, leaseId: entry.leaseId, resourceId: entry.id, waitedMs: now - waiter.enqueuedAt });
    this.#deliver(waiter.receiver, lease, now);
    return true;
  }

  /** Runs `fn` with a resource: released when `fn` settles successfully, destroyed when it throws. */
  async use<R>(fn: (resource: T, lease: Lease<T>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<R> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    const lease = await (this.#acquire(options, this.use, null) as Promise<Lease<T>>);
    let result: R;
    try {
      result = await fn(lease.resource, lease);
    } catch (error) {
      if (lease.active) lease.destroy(error);
      throw error;
    }
    if (lease.active) lease.release();
    return result;
  }

  /** Same as `lease.release()`, but checks that the lease belongs to this pool. */
  release(lease: Lease<T>): void {
    this.#checkOwn(lease, 'release');
    lease.release();
  }

  /** Same as `lease.destroy(reason)`, but checks that the lease belongs to this pool. */
  destroyLease(lease: Lease<T>, reason?: unknown): void {
    this.#checkOwn(lease, 'destroy');
    lease.destroy(reason);
  }

  /** The outstanding leases, oldest first, with how long they have been held and where they were acquired. */
  leases(): LeaseInfo[] {
    const now = this.#now();
    const out: LeaseInfo[] = [];
    for (const entry of this.#all) {
      if (entry.state === EntryState.LEASED) out.push(this.#leaseInfo(entry, now));
    }
    return out.sort((a, b) => b.heldMs - a.heldMs || a.id - b.id);
  }

  /**
   * Every live resource with its state, age, current lease and TCP socket: what the doctor joins to the
   * kernel's socket table. A snapshot; the sockets are the live objects.
   */
  inspect(): PoolInspection {
    const now = this.#now();
    const factory = this.#o.factory;
    const resources: ResourceInfo[] = [];
    for (const entry of this.#all) {
      const lent = entry.state === EntryState.LEASED;
      let socket: Socket | null = null;
      if (factory.socket !== undefined) {
        try {
          socket = factory.socket(entry.resource) ?? null;
        } catch {
          // A hook that throws must not break a diagnosis; the resource is reported without its socket.
          socket = null;
        }
      } else if (entry.resource instanceof Socket) socket = entry.resource;
      resources.push({
        id: entry.id,
        state: lent ? 'used' : entry.state === EntryState.IDLE ? 'idle' : entry.state === EntryState.VALIDATING ? 'validating' : 'resetting',
        createdAt: new Date(wallTime(this.#clock, entry.createdAt)),
        ageMs: now - entry.createdAt,
        idleMs: entry.state === EntryState.IDLE ? now - entry.idleSince : 0,
        lease: lent ? this.#leaseInfo(entry, now) : null,
        socket,
      });
    }
    return { name: this.#o.name, stats: this.stats(), resources };
  }

  /** A snapshot of sizes and counters. */
  stats(): PoolStats {
    const c = this.#counters;
    const idle = this.#idle.length + this.#probing;
    return {
      name: this.#o.name,
      size: this.#all.size,
      idle,
      inUse: this.#all.size - idle,
      pending: this.#pending,
      creating: this.#creates.size,
      destroying: this.#destroys.size,
      max: this.#o.max,
      min: this.#o.min,
      closed: this.#state !== OPEN,
      created: c.created,
      createErrors: c.createErrors,
      acquired: c.acquired,
      released: c.released,
      timeouts: c.timeouts,
      aborted: c.aborted,
      rejectedQueueFull: c.rejectedQueueFull,
      validationFailures: c.validationFailures,
      leaks: c.leaks,
      dropped: c.dropped,
      revoked: c.revoked,
      destroyed: { ...c.destroyed },
    };
  }

  /**
   * Stops lending and closes gracefully: waiters are rejected, idle resources destroyed, and outstanding
   * leases awaited up to `timeoutMs`; then their resources are destroyed and the leases reported. Never
   * hangs: every factory call it waits for is bounded by its own timeout. Afterwards the pool holds no
   * timer, socket or listener.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    if (this.#closePromise !== null) return this.#closePromise;
    rejectUnknownKeys(options, new Set(['timeoutMs']), 'close()');
    const timeoutMs = numberOption(options as Record<string, unknown>, 'timeoutMs', 30_000, { allowInfinity: true });
    this.#state = CLOSING;
    this.#closePromise = this.#shutdown(timeoutMs, new PoolClosedError(`pool "${this.#o.name}" is closing`));
    return this.#closePromise;
  }

  /**
   * Fails everything at once: waiters reject with `LG_POOL_CLOSED` (cause: `error`), creations are
   * aborted, and every resource, lent or not, is destroyed. Resolves when the destroys have settled.
   */
  destroy(error?: unknown): Promise<CloseReport> {
    if (this.#state === CLOSED && this.#closePromise !== null) return this.#closePromise;
    this.#destroyCause = error ?? new Error('pool destroyed');
    if (this.#closePromise !== null && this.#state === CLOSING) {
      // A graceful close is waiting on leases: cut the wait short.
      this.#wakeClose();
      return this.#closePromise;
    }
    if (this.#closePromise !== null) return this.#closePromise;
    this.#state = CLOSING;
    this.#closePromise = this.#shutdown(0, new PoolClosedError(`pool "${this.#o.name}" was destroyed`, { cause: this.#destroyCause }));
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close().then(() => undefined);
  }

  toString(): string {
    const s = this.stats();
    return `Pool "${s.name}" (max=${s.max} inUse=${s.inUse} idle=${s.idle} pending=${s.pending} creating=${s.creating})`;
  }

  // ---------------------------------------------------------------------------------------------------
  // Acquire

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- the public method whose frames the site omits
  #acquire(options: AcquireOptions | undefined, callee: Function, receiver: AcquireReceiver<T> | null, given?: number): Promise<Lease<T>> | undefined {
    if (this.#state !== OPEN) return this.#refuse(receiver, this.#closedError('acquire from'));
    let site: AcquireSite | null = null;
    if (--this.#captureIn <= 0) {
      site = this.#leak.capture(callee);
      this.#captureIn = this.#leak.nextCapture(this.#coarseNow);
    }
    let timeoutMs = this.#o.acquireTimeoutMs;
    let label: string | undefined;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      if (options.timeoutMs !== undefined) {
        const given: unknown = options.timeoutMs;
        if (typeof given !== 'number' || Number.isNaN(given) || given <= 0) {
          return this.#refuse(receiver, new InvalidOptionError('timeoutMs', `invalid acquire() option "timeoutMs": expected a number > 0 (or Infinity), got ${describe(given)}`));
        }
        timeoutMs = given;
      }
      // Checked per call, as the constructor checks its options: a misspelt `timeout` must not be ignored.
      for (const key in options) {
        if (key !== 'timeoutMs' && key !== 'label' && key !== 'signal') {
          return this.#refuse(receiver, new InvalidOptionError(key, `unknown acquire() option "${key}"; known options: label, signal, timeoutMs`));
        }
      }
      label = options.label;
      signal = options.signal;
      if (label !== undefined && typeof label !== 'string') {
        return this.#refuse(receiver, new InvalidOptionError('label', `invalid acquire() option "label": expected a string or undefined, got ${describe(label)}`));
      }
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        return this.#refuse(receiver, new InvalidOptionError('signal', `invalid acquire() option "signal": expected an AbortSignal or undefined, got ${describe(signal)}`));
      }
      if (signal?.aborted === true) {
        this.#counters.aborted++;
        return this.#refuse(receiver, new AcquireAbortedError(`acquire aborted before it started (${this.#state_()})`, { cause: signal.reason }));
      }
    }

    // Fast path: nobody is queued ahead (first-in first-out), and an idle resource needs no validation.
    if (this.#pending === 0 && this.#idle.length > 0) {
      const now = given === undefined ? (this.#preciseIdle ? this.#now() : this.#coarseNow) : this.#stamp(given);
      let entry: PoolEntry<T> | undefined;
      while ((entry = this.#lifo ? this.#idle.pop() : this.#idle.shift()) !== undefined) {
        if (entry.expiresAt <= now) {
          this.#destroyEntry(entry, 'lifetime', undefined);
          continue;
        }
        if (this.#needsValidation(entry, now)) {
          // Put it back where it was: the pump validates it for the queue head, which will be this caller.
          if (this.#lifo) this.#idle.push(entry);
          else this.#idle.unshift(entry);
        } else {
          const lease = this.#lend(entry, now, site, label);
          if (channels.acquire.hasSubscribers) channels.acquire.publish({ pool: this, name: this.#o.name, leaseId: lease.id, resourceId: entry.id, waitedMs: 0 });
          if (receiver === null) return Promise.resolve(lease);
          this.#deliver(receiver, lease, now);
          return undefined;
        }
        break;
      }
    }

    if (this.#pending >= this.#o.maxWaiting) {
      this.#counters.rejectedQueueFull++;
      return this.#refuse(receiver, new QueueFullError(`acquire rejected: the wait queue is full (maxWaiting=${this.#o.maxWaiting}; ${this.#state_()})`));
    }
    const now = given === undefined ? this.#batchNow() : this.#stamp(given);
    const promise = receiver === null ? new Promise<Lease<T>>(captureResolvers) : undefined;
    const waiter: Waiter<T> = {
      receiver: receiver as AcquireReceiver<T>,
      onLease: capturedResolve as (lease: Lease<T>) => void,
      onAcquireError: capturedReject as (error: Error) => void,
      enqueuedAt: now,
      deadline: now + timeoutMs,
      timeoutMs,
      site,
      label,
      signal,
      onAbort: undefined,
      settled: false,
    };
    // Not kept: a resolving function retains its promise, and a settled promise retains its lease, which
    // would then never be garbage-collected (and a dropped lease never reported).
    capturedResolve = capturedReject = undefined;
    if (receiver === null) waiter.receiver = waiter;
    this.#waiters.push(waiter);
    this.#pending++;
    if (signal !== undefined) {
      waiter.onAbort = () => {
        this.#abortWaiter(waiter);
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    if (timeoutMs === this.#o.acquireTimeoutMs) {
      if (timeoutMs !== Infinity) this.#defaultDeadlines.push(waiter);
    } else if (timeoutMs !== Infinity) {
      this.#customDeadlines.push(waiter);
    }
    if (waiter.deadline < this.#deadlineTimerAt) this.#armDeadline();
    if (this.#backoffTimer !== null) this.#refBackoff();
    if (this.#listening && this.#events.hasListeners('queue')) this.#events.emit('queue', { pool: this.#o.name, pending: this.#pending });
    if (channels.queue.hasSubscribers) channels.queue.publish({ pool: this, name: this.#o.name, pending: this.#pending });
    // Under contention nothing is idle and nothing can be created: skip the scheduler entirely.
    if (this.#idle.length > 0 || (this.#all.size + this.#creates.size < this.#o.max && this.#creates.size < this.#o.maxConcurrentCreates)) this.#pump();
    return promise;
  }

  /** An acquire that fails before queueing: a rejected promise, or the receiver told at once. */
  #refuse(receiver: AcquireReceiver<T> | null, error: Error): Promise<never> | undefined {
    if (receiver === null) return Promise.reject(error);
    refuse(receiver, error);
    return undefined;
  }

  #needsValidation(entry: PoolEntry<T>, now: number): boolean {
    return this.#o.factory.validate !== undefined && now - Math.max(entry.idleSince, entry.checkedAt) >= this.#o.validateAfterIdleMs;
  }

  #lend(entry: PoolEntry<T>, now: number, site: AcquireSite | null, label: string | undefined): Lease<T> {
    const id = ++this.#leaseSeq;
    entry.state = EntryState.LEASED;
    entry.uses++;
    entry.leaseId = id;
    entry.acquiredAt = now;
    entry.site = site;
    entry.label = label;
    entry.leakReportedAt = 0;
    const lease = new Lease(entry, id, site, label);
    // Held strongly only until the next housekeeping run registers it for drop detection; leases that
    // come back before then (nearly all) never pay for the FinalizationRegistry.
    if (this.#leak.enabled) entry.lease = lease;
    this.#counters.acquired++;
    return lease;
  }

  #nextWaiter(): Waiter<T> | undefined {
    let waiter: Waiter<T> | undefined;
    while ((waiter = this.#waiters.peekFirst()) !== undefined && waiter.settled) this.#waiters.shift();
    return waiter;
  }

  /** Settles a waiter's bookkeeping (not its promise). */
  #unqueue(waiter: Waiter<T>): void {
    waiter.settled = true;
    this.#pending--;
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (this.#waiters.peekFirst() === waiter) this.#waiters.shift();
    if (this.#defaultDeadlines.peekFirst() === waiter) this.#defaultDeadlines.shift();
    else if (this.#customDeadlines.peek() === waiter) this.#customDeadlines.pop();
    // Fewer waiters: creations started for them may be unwanted now (nothing to do in the steady state).
    if (this.#creates.size > 0) this.#shedCreates();
    if (this.#pending === 0) {
      // Nobody waits: drop the (ref'd) deadline timer so an idle pool never holds the process open.
      if (this.#deadlineTimer !== null) this.#disarmDeadline();
    } else if (this.#waiters.length > 1024 && this.#waiters.length > 4 * this.#pending) {
      // Settled waiters are deleted lazily; keep the dead weight bounded when many give up at once.
      this.#waiters.filter((w) => !w.settled);
      this.#defaultDeadlines.filter((w) => !w.settled);
      this.#customDeadlines.retain((w) => !w.settled);
    }
  }

  #grant(waiter: Waiter<T>, entry: PoolEntry<T>, now: number): void {
    this.#unqueue(waiter);
    const lease = this.#lend(entry, now, waiter.site, waiter.label);
    if (this.#listening && this.#events.hasListeners('acquire')) this.#events.emit('acquire', { pool: this.#o.name, lease, waitedMs: this.#now() - waiter.enqueuedAt });
    if (channels.acquire.hasSubscribers) channels.acquire.publish({ pool: this, name: this.#o.name, leaseId: lease.id, resourceId: entry.id, waitedMs: this.#now() - waiter.enqueuedAt });
    // A promise's resolve cannot re-enter the pool: only receivers need the re-entrancy queue.
    if (waiter.receiver === waiter) waiter.onLease(lease, now);
    else this.#deliver(waiter.receiver, lease, now);
  }

  /**
   * Hands a lease to its receiver. A receiver may end a lease inside `onLease` (hand it straight back),
   * which grants the next waiter from within this call: without this queue that recursion would grow
   * one frame per waiter and overflow the stack on a long queue. Nested deliveries wait here instead,
   * and the outermost call hands them out in order, after the pool's state is settled.
   */
  #deliver(receiver: AcquireReceiver<T>, lease: Lease<T>, now: number): void {
    if (this.#delivering) {
      this.#deliveries.push(receiver, lease, now);
      return;
    }
    this.#delivering = true;
    try {
      deliver(receiver, lease, now);
      const queue = this.#deliveries;
      if (queue.length > 0) {
        for (let i = 0; i < queue.length; i += 3) deliver(queue[i] as AcquireReceiver<T>, queue[i + 1] as Lease<T>, queue[i + 2] as number);
        queue.length = 0;
      }
    } finally {
      this.#delivering = false;
    }
  }

  #abortWaiter(waiter: Waiter<T>): void {
    if (waiter.settled) return;
    this.#unqueue(waiter);
    this.#counters.aborted++;
    const waited = Math.round(this.#now() - waiter.enqueuedAt);
    refuse(waiter.receiver, new AcquireAbortedError(`acquire aborted after ${waited} ms (${this.#state_()})`, { cause: waiter.signal?.reason }));
  }

  /** The live waiter with the earliest deadline, discarding settled ones on the way. */
  #earliestDeadline(): Waiter<T> | undefined {
    let first: Waiter<T> | undefined;
    while ((first = this.#defaultDeadlines.peekFirst()) !== undefined && first.settled) this.#defaultDeadlines.shift();
    let custom: Waiter<T> | undefined;
    while ((custom = this.#customDeadlines.peek()) !== undefined && custom.settled) this.#customDeadlines.pop();
    if (first === undefined) return custom;
    if (custom === undefined) return first;
    return custom.deadline < first.deadline ? custom : first;
  }

  #disarmDeadline(): void {
    if (this.#deadlineTimer !== null) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = null;
    this.#deadlineTimerAt = Infinity;
  }

  #armDeadline(): void {
    const top = this.#earliestDeadline();
    if (top === undefined) {
      this.#disarmDeadline();
      return;
    }
    // An earlier timer is fine: it fires, finds nothing due, and re-arms. Only a later one must move.
    if (this.#deadlineTimer !== null && this.#deadlineTimerAt <= top.deadline) return;
    if (this.#deadlineTimer !== null) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimerAt = top.deadline;
    // Not unref'd: a caller is awaiting this acquire, and must get its timeout rather than a silent exit.
    this.#deadlineTimer = this.#clock.setTimeout(() => {
      this.#onDeadline();
    }, Math.max(0, top.deadline - this.#now()), false);
  }

  #onDeadline(): void {
    this.#deadlineTimer = null;
    this.#deadlineTimerAt = Infinity;
    const now = this.#now();
    let top: Waiter<T> | undefined;
    while ((top = this.#earliestDeadline()) !== undefined && top.deadline <= now) this.#timeOut(top, now);
    this.#armDeadline();
  }

  #timeOut(waiter: Waiter<T>, now: number): void {
    const message = this.#timeoutMessage(waiter, now);
    this.#unqueue(waiter);
    this.#counters.timeouts++;
    this.#escalate(now);
    const cause = this.#consecutiveCreateFailures > 0 ? this.#lastCreateError : undefined;
    const error = new AcquireTimeoutError(message, cause === undefined ? undefined : { cause });
    if (this.#listening && this.#events.hasListeners('timeout')) this.#events.emit('timeout', { pool: this.#o.name, waitedMs: now - waiter.enqueuedAt, error });
    if (channels.timeout.hasSubscribers) channels.timeout.publish({ pool: this, name: this.#o.name, waitedMs: now - waiter.enqueuedAt, error });
    refuse(waiter.receiver, error);
  }

  #timeoutMessage(waiter: Waiter<T>, now: number): string {
    const lines = [`acquire timed out after ${Math.round(now - waiter.enqueuedAt)} ms (${this.#state_()})`];
    const leases = this.leases();
    if (leases.length > 0) {
      lines.push('  oldest leases:');
      const oldest = leases.slice(0, 3);
      for (const info of oldest) lines.push(`    ${describeLease(info)}`);
      // Sampled mode may have missed the oldest; the oldest lease that did capture its site is the best lead.
      const oldestWithSite = oldest.some((l) => l.site !== null) ? undefined : leases.find((l) => l.site !== null);
      if (oldestWithSite !== undefined) lines.push(`    ... oldest with a captured site: ${describeLease(oldestWithSite)}`);
      const bySite = new Map<string, number>();
      let unsampled = 0;
      for (const info of leases) {
        if (info.site === null) unsampled++;
        else bySite.set(info.site, (bySite.get(info.site) ?? 0) + 1);
      }
      const top = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([site, n]) => `${site} x${n}`);
      if (unsampled > 0) top.push(`(site not sampled) x${unsampled}`);
      lines.push(`  outstanding leases by acquire site: ${top.join(', ')}`);
    }
    if (this.#consecutiveCreateFailures > 0) {
      lines.push(`  creation is failing (${this.#consecutiveCreateFailures} in a row), last error: ${errorText(this.#lastCreateError)}`);
    }
    return lines.join('\n');
  }

  // ---------------------------------------------------------------------------------------------------
  // The scheduler

  /** The one function that moves resources to waiters and starts validations and creations. */
  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        this.#serveWaiters();
        this.#maybeCreate();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by re-entrant calls in the body
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #serveWaiters(): void {
    if (this.#pending === 0 || this.#idle.length === 0) return;
    const now = this.#preciseIdle ? this.#now() : this.#coarseNow;
    while (this.#pending > this.#validatingForQueue && this.#idle.length > 0) {
      const entry = (this.#lifo ? this.#idle.pop() : this.#idle.shift()) as PoolEntry<T>;
      if (entry.expiresAt <= now) {
        this.#destroyEntry(entry, 'lifetime', undefined);
        continue;
      }
      if (this.#needsValidation(entry, now)) {
        this.#validateForQueue(entry);
        continue;
      }
      const waiter = this.#nextWaiter();
      if (waiter === undefined) {
        this.#pushIdle(entry);
        return;
      }
      this.#grant(waiter, entry, now);
    }
  }

  /** Hands a resource to the oldest waiter, or makes it idle. */
  #offer(entry: PoolEntry<T>, now: number): void {
    if (this.#pending > 0) {
      const waiter = this.#nextWaiter();
      if (waiter !== undefined) {
        this.#grant(waiter, entry, now);
        return;
      }
    }
    entry.idleSince = now;
    this.#pushIdle(entry);
  }

  #pushIdle(entry: PoolEntry<T>): void {
    entry.state = EntryState.IDLE;
    this.#idle.push(entry);
  }

  #maybeCreate(): void {
    if (this.#state !== OPEN) return;
    const o = this.#o;
    const supply = this.#creates.size + this.#validatingForQueue + this.#resetting;
    // HikariCP's elision: create only for waiters not already covered by creations in flight or
    // validations about to finish, and for `min`.
    let wanted = Math.max(this.#pending - supply, o.min - this.#all.size - this.#creates.size);
    if (wanted <= 0 || this.#all.size + this.#creates.size >= o.max || this.#creates.size >= o.maxConcurrentCreates) return;
    if (this.#now() < this.#backoffUntil) return; // the backoff timer pumps again when it ends
    while (wanted-- > 0 && this.#all.size + this.#creates.size < o.max && this.#creates.size < o.maxConcurrentCreates) {
      this.#startCreate();
    }
  }

  #startCreate(): void {
    const o = this.#o;
    const attempt: CreateAttempt<T> = {
      controller: new AbortController(),
      unwanted: new AbortController(),
      startedAt: this.#now(),
      timer: null,
      abandoned: false,
      invalidated: null,
      entry: null,
    };
    this.#creates.add(attempt);
    if (o.createTimeoutMs !== Infinity) {
      attempt.timer = this.#clock.setTimeout(() => {
        attempt.timer = null;
        const error = new CreateTimeoutError(`factory.create did not settle within createTimeoutMs=${o.createTimeoutMs} (pool "${o.name}")`);
        attempt.controller.abort(error);
        this.#abandonCreate(attempt, error);
      }, o.createTimeoutMs, true);
    }
    const context: CreateContext = {
      signal: attempt.controller.signal,
      unwanted: attempt.unwanted.signal,
      invalidate: (reason?: unknown) => {
        if (attempt.entry !== null) this.#invalidate(attempt.entry, reason);
        else attempt.invalidated ??= { reason };
      },
      revoke: (reason?: unknown) => {
        if (attempt.entry !== null) this.#revokeByFactory(attempt.entry, reason);
        else attempt.invalidated ??= { reason };
      },
    };
    settle(() => o.factory.create(context)).then(
      (resource) => {
        this.#created(attempt, resource);
      },
      (error: unknown) => {
        if (attempt.abandoned) return;
        // Withdrawn only when it gave up because it was unwanted (the reason itself, or an error it
        // caused, such as the budget's abort): a connect that really failed meanwhile is a failure.
        const reason: unknown = attempt.unwanted.signal.reason;
        if (reason !== undefined && (error === reason || (error as { cause?: unknown } | null)?.cause === reason)) this.#withdrawCreate(attempt);
        else this.#abandonCreate(attempt, error);
      },
    );
  }

  /**
   * Tells creations that nobody needs any more (their waiters were served by other resources, gave up or
   * timed out, and `min` is met), youngest first, through `CreateContext.unwanted`: a factory still
   * waiting in a line (a fleet budget's permit, a connection slot) leaves it rather than keep a place
   * that another process, or another origin, needs.
   */
  #shedCreates(): void {
    if (this.#state !== OPEN) return;
    const needed = Math.max(0, this.#pending - this.#validatingForQueue - this.#resetting, this.#o.min - this.#all.size);
    // In start order: the oldest `needed` still-wanted ones stay, the younger ones are told.
    let kept = 0;
    for (const attempt of this.#creates) {
      if (attempt.unwanted.signal.aborted) continue;
      if (kept < needed) kept++;
      else attempt.unwanted.abort(new CreateUnwantedError(`no waiter needs this creation any more (pool "${this.#o.name}": ${this.#state_()})`));
    }
  }

  /** A creation told it was unwanted gave up: not a failure (no backoff); a new one starts if demand came back. */
  #withdrawCreate(attempt: CreateAttempt<T>): void {
    attempt.abandoned = true;
    if (attempt.timer !== null) this.#clock.clearTimeout(attempt.timer);
    attempt.timer = null;
    this.#creates.delete(attempt);
    this.#wakeClose();
    this.#pump();
  }

  /** A creation failed or timed out: count it, back off, and let the pump retry later. */
  #abandonCreate(attempt: CreateAttempt<T>, error: unknown): void {
    if (attempt.abandoned) return;
    attempt.abandoned = true;
    if (attempt.timer !== null) this.#clock.clearTimeout(attempt.timer);
    attempt.timer = null;
    this.#creates.delete(attempt);
    this.#wakeClose();
    if (this.#state !== OPEN) return;
    const o = this.#o;
    this.#counters.createErrors++;
    this.#consecutiveCreateFailures++;
    this.#lastCreateError = error;
    // Exponential backoff with full jitter: never a busy loop, and a fleet of clients does not retry in step.
    const ceiling = Math.min(o.createRetryMaxDelayMs, o.createRetryInitialDelayMs * 2 ** Math.min(30, this.#consecutiveCreateFailures - 1));
    const delay = Math.max(1, Math.round(Math.random() * ceiling));
    this.#backoffUntil = this.#now() + delay;
    this.#armBackoff(delay);
    if (this.#listening && this.#events.hasListeners('createError')) {
      this.#events.emit('createError', { pool: o.name, error, consecutiveFailures: this.#consecutiveCreateFailures, retryInMs: delay });
    }
    if (channels.createError.hasSubscribers) channels.createError.publish({ pool: this, name: o.name, error, consecutiveFailures: this.#consecutiveCreateFailures, retryInMs: delay });
    if (this.#ready !== null && !this.#minReached) {
      this.#ready.reject(error);
      this.#ready = null;
    }
  }

  #armBackoff(delay: number): void {
    if (this.#backoffTimer !== null) this.#clock.clearTimeout(this.#backoffTimer);
    // Ref'd while someone awaits the retry (a waiter without a deadline, or ready(), has no other timer
    // keeping the process alive); unref'd when it only refills `min`.
    this.#backoffRef = this.#pending > 0 || this.#ready !== null;
    this.#backoffTimer = this.#clock.setTimeout(() => {
      // The timer, not a clock comparison, ends the backoff: timers may fire slightly before the clock
      // says they are due (regression: the retry then slipped to the next housekeeping run).
      this.#backoffTimer = null;
      this.#backoffUntil = -Infinity;
      this.#pump();
    }, Math.max(1, Math.ceil(delay)), !this.#backoffRef);
  }

  /** Someone started awaiting creation: make a running unref'd backoff keep the process alive. */
  #refBackoff(): void {
    if (this.#backoffTimer !== null && !this.#backoffRef) this.#armBackoff(this.#backoffUntil - this.#clock.now());
  }

  #created(attempt: CreateAttempt<T>, resource: T): void {
    const o = this.#o;
    const now = this.#now();
    const late = attempt.abandoned;
    if (!late) {
      if (attempt.timer !== null) this.#clock.clearTimeout(attempt.timer);
      attempt.timer = null;
      this.#creates.delete(attempt);
    }
    const jitter = o.maxLifetimeJitterMs > 0 ? Math.random() * o.maxLifetimeJitterMs : 0;
    const expiresAt = o.maxLifetimeMs > 0 ? now + o.maxLifetimeMs - jitter : Infinity;
    const entry = new PoolEntry(++this.#entrySeq, this.#owner, resource, now, expiresAt);
    attempt.entry = entry;
    // A late arrival (after its create timeout) is adopted if there is room, never silently lost.
    const room = this.#all.size + this.#creates.size < o.max;
    this.#all.add(entry);
    this.#counters.created++;
    if (!late) {
      this.#consecutiveCreateFailures = 0;
      this.#backoffUntil = -Infinity;
    }
    if (this.#listening && this.#events.hasListeners('create')) this.#events.emit('create', { pool: o.name, resource, durationMs: now - attempt.startedAt });
    if (channels.create.hasSubscribers) channels.create.publish({ pool: this, name: o.name, resourceId: entry.id, durationMs: now - attempt.startedAt });
    if (this.#state !== OPEN) {
      this.#destroyEntry(entry, 'closed', undefined);
      this.#wakeClose();
      return;
    }
    if (late && !room) {
      this.#destroyEntry(entry, 'error', attempt.controller.signal.reason);
      return;
    }
    if (attempt.invalidated !== null) {
      this.#destroyEntry(entry, 'error', attempt.invalidated.reason);
      this.#pump();
      return;
    }
    this.#offer(entry, now);
    if (!this.#minReached && this.#all.size >= o.min) {
      this.#minReached = true;
      this.#ready?.resolve();
      this.#ready = null;
    }
    this.#pump();
  }

  #validateForQueue(entry: PoolEntry<T>): void {
    entry.state = EntryState.VALIDATING;
    this.#validatingForQueue++;
    this.#runValidation(entry, (ok, error) => {
      this.#validatingForQueue--;
      const now = this.#now();
      if (entry.state === EntryState.DESTROYED) {
        this.#pump();
        return;
      }
      if (ok && entry.doomed === null && this.#state === OPEN) {
        entry.checkedAt = now;
        this.#offer(entry, now);
      } else {
        if (!ok) this.#validationFailed(entry, error);
        else this.#destroyEntry(entry, entry.doomed ?? 'closed', entry.doomedCause);
      }
      this.#pump();
    });
  }

  #validationFailed(entry: PoolEntry<T>, error: unknown): void {
    this.#counters.validationFailures++;
    if (this.#listening && this.#events.hasListeners('validationFailed')) this.#events.emit('validationFailed', { pool: this.#o.name, resource: entry.resource, error });
    this.#destroyEntry(entry, 'validation', error);
  }

  /** Runs factory.validate under validateTimeoutMs; calls `done` exactly once. */
  #runValidation(entry: PoolEntry<T>, done: (ok: boolean, error: unknown) => void): void {
    const o = this.#o;
    if (o.factory.validate === undefined) {
      done(true, undefined);
      return;
    }
    const controller = new AbortController();
    const work = settle(() => o.factory.validate?.(entry.resource, { signal: controller.signal }) ?? true);
    this.#bounded(work, o.validateTimeoutMs, () => {
      const error = new ValidationTimeoutError(`factory.validate did not settle within validateTimeoutMs=${o.validateTimeoutMs} (pool "${o.name}")`);
      controller.abort(error);
      return error;
    }).then((ok) => { done(ok, ok ? undefined : new Error('factory.validate returned false')); }, (error: unknown) => { done(false, error); });
  }

  /**
   * `work`, or a rejection with `onTimeout()` once `timeoutMs` passes: every factory call the pool waits
   * for is bounded, so no hook can hang it. The timer is unref'd (it guards background work) and cleared
   * as soon as `work` settles.
   */
  #bounded<R>(work: Promise<R>, timeoutMs: number, onTimeout: () => Error): Promise<R> {
    if (timeoutMs === Infinity) return work;
    return new Promise<R>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => { reject(onTimeout()); }, timeoutMs, true);
      work.finally(() => {
        this.#clock.clearTimeout(timer);
      }).then(resolve, reject);
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Return and destroy

  #checkOwn(lease: Lease<T>, action: string): void {
    if (!(lease instanceof Lease) || lease[kOwner] !== this.#owner) {
      const what = lease instanceof Lease ? String(lease) : 'a value that is not a lease';
      throw new ForeignLeaseError(`cannot ${action} ${what} through pool "${this.#o.name}": it was not lent by this pool`);
    }
  }

  /** A lease ended (called by the lease, through the owner object). */
  #settle(entry: PoolEntry<T>, destroy: boolean, cause: unknown): void {
    const now = this.#preciseIdle ? this.#now() : this.#coarseNow;
    entry.lease = null;
    if (entry.tracked) {
      entry.tracked = false;
      this.#leak.untrack(entry);
    }
    this.#counters.released++;
    if (this.#listening && this.#events.hasListeners('release')) this.#events.emit('release', { pool: this.#o.name, leaseId: entry.leaseId, heldMs: this.#now() - entry.acquiredAt });
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this, name: this.#o.name, leaseId: entry.leaseId, resourceId: entry.id, heldMs: this.#now() - entry.acquiredAt });
    if (entry.leakReportedAt !== 0) {
      const unleaked = { pool: this.#o.name, leaseId: entry.leaseId, heldMs: this.#now() - entry.acquiredAt, label: entry.label, site: entry.site?.frame ?? null };
      if (this.#events.hasListeners('unleaked')) this.#events.emit('unleaked', unleaked);
      if (channels.unleaked.hasSubscribers) channels.unleaked.publish({ ...unleaked, pool: this, name: this.#o.name });
    }
    if (destroy) this.#destroyEntry(entry, 'error', cause);
    else if (entry.doomed !== null) this.#destroyEntry(entry, entry.doomed, entry.doomedCause);
    else if (this.#state !== OPEN) this.#destroyEntry(entry, 'closed', undefined);
    else if (entry.expiresAt <= now) this.#destroyEntry(entry, 'lifetime', undefined);
    else if (this.#o.factory.reset !== undefined) {
      this.#reset(entry);
      return;
    } else {
      this.#offer(entry, now);
      return;
    }
    // A resource was destroyed: waiters or `min` may need a replacement; a closing pool may be done.
    this.#wakeClose();
    this.#pump();
  }

  #reset(entry: PoolEntry<T>): void {
    entry.state = EntryState.RESETTING;
    this.#resetting++;
    const timeoutMs = this.#o.validateTimeoutMs;
    this.#bounded(settle(() => this.#o.factory.reset?.(entry.resource)), timeoutMs, () => new ValidationTimeoutError(`factory.reset did not settle within validateTimeoutMs=${timeoutMs} (pool "${this.#o.name}")`)).then(
      () => {
        this.#resetting--;
        if (entry.state === EntryState.DESTROYED) {
          this.#pump();
          return;
        }
        if (entry.doomed !== null) this.#destroyEntry(entry, entry.doomed, entry.doomedCause);
        else if (this.#state !== OPEN) this.#destroyEntry(entry, 'closed', undefined);
        else {
          this.#offer(entry, this.#now());
          this.#pump();
          return;
        }
        this.#wakeClose();
        this.#pump();
      },
      (error: unknown) => {
        this.#resetting--;
        if (entry.state !== EntryState.DESTROYED) this.#destroyEntry(entry, 'error', error);
        this.#wakeClose();
        this.#pump();
      },
    );
  }

  /** The factory takes the resource back, from under a lease if need be (CreateContext.revoke). */
  #revokeByFactory(entry: PoolEntry<T>, reason: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    entry.revoked = { reason };
    this.#destroyEntry(entry, 'error', reason);
    this.#wakeClose();
    this.#pump();
  }

  /** The resource broke on its own (CreateContext.invalidate). */
  #invalidate(entry: PoolEntry<T>, reason: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    if (entry.state === EntryState.IDLE) {
      this.#destroyEntry(entry, 'error', reason);
      this.#pump();
      return;
    }
    // Lent, validating or resetting: destroyed as soon as whoever holds it is done.
    if (entry.doomed === null) {
      entry.doomed = 'error';
      entry.doomedCause = reason;
    }
  }

  #destroyEntry(entry: PoolEntry<T>, reason: DestroyReason, cause: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    const wasLent = entry.state === EntryState.LEASED;
    if (entry.state === EntryState.IDLE) this.#idle.remove(entry);
    entry.state = EntryState.DESTROYED;
    entry.endReason = reason;
    entry.lease = null;
    if (entry.tracked) {
      entry.tracked = false;
      this.#leak.untrack(entry);
    }
    this.#all.delete(entry);
    this.#counters.destroyed[reason]++;
    const o = this.#o;
    if (this.#listening && this.#events.hasListeners('destroy')) this.#events.emit('destroy', { pool: o.name, resource: entry.resource, reason, cause });
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ pool: this, name: o.name, resourceId: entry.id, reason, cause });
    if (!wasLent && reason !== 'closed' && reason !== 'leak' && reason !== 'revoked' && channels.evict.hasSubscribers) {
      channels.evict.publish({ pool: this, name: o.name, resourceId: entry.id, reason });
    }

    const bounded = this.#bounded(settle(() => o.factory.destroy(entry.resource)), o.destroyTimeoutMs, () => {
      this.#destroyTimeouts++;
      return new DestroyTimeoutError(`factory.destroy did not settle within destroyTimeoutMs=${o.destroyTimeoutMs} (pool "${o.name}"); no longer waiting for it`);
    });
    const tracked: Promise<void> = bounded.then(
      () => undefined,
      (error: unknown) => {
        if (this.#listening && this.#events.hasListeners('destroyError')) this.#events.emit('destroyError', { pool: o.name, resource: entry.resource, error });
      },
    ).finally(() => {
      this.#destroys.delete(tracked);
      this.#wakeClose();
    });
    this.#destroys.add(tracked);
  }

  // ---------------------------------------------------------------------------------------------------
  // Housekeeping and leaks

  #housekeep(now: number): void {
    if (this.#state !== OPEN) return;
    const o = this.#o;
    // 1. Leases: register young ones for drop detection, report those held too long, revoke the abandoned.
    if (this.#leak.enabled) {
      // Oldest lease first, so reports read in the order the leaks happened.
      const leased = [...this.#all].filter((e) => e.state === EntryState.LEASED).sort((a, b) => a.leaseId - b.leaseId);
      for (const entry of leased) {
        if (entry.lease !== null) {
          this.#leak.track(entry.lease, { entry, leaseId: entry.leaseId } satisfies DroppedToken<T>);
          entry.lease = null;
          entry.tracked = true;
        }
        const held = now - entry.acquiredAt;
        if (o.reclaimAfterMs > 0 && held >= o.reclaimAfterMs) {
          this.#revoke(entry, now);
        } else if (o.leakWarnAfterMs > 0 && held >= o.leakWarnAfterMs && entry.leakReportedAt === 0) {
          entry.leakReportedAt = now;
          this.#reportLeak('held', entry, now);
        }
      }
      // A waiter past half its deadline is pressure: capture every site until it passes.
      const head = this.#nextWaiter();
      if (head !== undefined && now - head.enqueuedAt > head.timeoutMs / 2) this.#escalate(now);
    }
    // 2. Idle resources, oldest-idle first: lifetime, then idleness (never below min), then keep-alive.
    const idle = this.#idle.toArray().sort((a, b) => a.idleSince - b.idleSince);
    // Expiries are mandatory: count them first, so idleness never evicts what `min` then has to recreate.
    let evictable = this.#all.size - o.min;
    for (const entry of idle) if (entry.expiresAt <= now) evictable--;
    for (const entry of idle) {
      if (entry.expiresAt <= now) {
        this.#destroyEntry(entry, 'lifetime', undefined);
      } else if (o.idleTimeoutMs > 0 && evictable > 0 && now - entry.idleSince >= o.idleTimeoutMs) {
        this.#destroyEntry(entry, 'idle', undefined);
        evictable--;
      } else if (o.keepAliveIntervalMs > 0 && now - Math.max(entry.idleSince, entry.checkedAt) >= o.keepAliveIntervalMs) {
        this.#probe(entry);
      }
    }
    // 4. Refill to min, retry creations for waiters.
    this.#pump();
  }

  #probe(entry: PoolEntry<T>): void {
    this.#idle.remove(entry);
    entry.state = EntryState.VALIDATING;
    this.#probing++;
    this.#runValidation(entry, (ok, error) => {
      this.#probing--;
      if (entry.state === EntryState.DESTROYED) return;
      if (!ok) this.#validationFailed(entry, error);
      else if (entry.doomed !== null) this.#destroyEntry(entry, entry.doomed, entry.doomedCause);
      else if (this.#state !== OPEN) this.#destroyEntry(entry, 'closed', undefined);
      else {
        entry.checkedAt = this.#now();
        // Back in idleness order, so a probe never makes a resource look recently used (LIFO ageing).
        entry.state = EntryState.IDLE;
        this.#idle.insertBefore(entry, (other) => other.idleSince > entry.idleSince);
      }
      this.#wakeClose();
      this.#pump();
    });
  }

  #revoke(entry: PoolEntry<T>, now: number): void {
    this.#counters.revoked++;
    this.#reportLeak('reclaimed', entry, now);
    this.#destroyEntry(entry, 'revoked', undefined);
  }

  #onLeaseDropped(token: DroppedToken<T>): void {
    const { entry, leaseId } = token;
    if (entry.leaseId !== leaseId || entry.state !== EntryState.LEASED) return;
    entry.tracked = false;
    const now = this.#now();
    this.#counters.dropped++;
    this.#reportLeak('dropped', entry, now);
    // Someone may still hold the raw resource: it is destroyed, never lent again; its slot is freed.
    this.#destroyEntry(entry, 'leak', undefined);
    this.#pump();
  }

  #reportLeak(kind: LeakReport['kind'], entry: PoolEntry<T>, now: number): void {
    this.#counters.leaks++;
    this.#escalate(now);
    const info = this.#leaseInfo(entry, now);
    const report: LeakReport = { kind, ...info };
    const what = kind === 'held' ? `held for ${Math.round(info.heldMs)} ms (leakWarnAfterMs=${this.#o.leakWarnAfterMs})`
      : kind === 'dropped' ? `garbage-collected without release after ${Math.round(info.heldMs)} ms; its resource was destroyed`
        : `revoked after ${Math.round(info.heldMs)} ms (reclaimAfterMs=${this.#o.reclaimAfterMs}); its resource was destroyed`;
    const message = `lease #${info.id} of pool "${info.pool}" ${what}${info.label === undefined ? '' : ` (label "${info.label}")`}, acquired at ${info.site ?? '(site not sampled)'}`;
    if (channels.leak.hasSubscribers) channels.leak.publish({ pool: this, name: this.#o.name, report, message });
    if (this.#listening && this.#events.hasListeners('leak')) this.#events.emit('leak', { ...report, message });
    else {
      // One structured line when nobody listens, so a leak is never silent.
      process.stderr.write(`${JSON.stringify({ level: 'warn', code: LEAK_CODES[kind], msg: message, pool: info.pool, leaseId: info.id, heldMs: Math.round(info.heldMs), label: info.label, site: info.site, stack: info.stack })}\n`);
    }
  }

  #leaseInfo(entry: PoolEntry<T>, now: number): LeaseInfo {
    return {
      pool: this.#o.name,
      id: entry.leaseId,
      heldMs: now - entry.acquiredAt,
      acquiredAt: new Date(wallTime(this.#clock, entry.acquiredAt)),
      label: entry.label,
      site: entry.site?.frame ?? null,
      stack: entry.site?.stack ?? null,
      resourceId: entry.id,
    };
  }

  // ---------------------------------------------------------------------------------------------------
  // Shutdown

  /** Pressure or a leak: capture every call site from the next acquire on, for a while (see LeakTracking). */
  #escalate(now: number): void {
    this.#leak.escalate(now);
    this.#captureIn = 1;
  }

  #wakeClose(): void {
    this.#closeWake?.();
  }

  async #shutdown(graceMs: number, waiterError: PoolClosedError): Promise<CloseReport> {
    const o = this.#o;
    // 1. No more waiting: every waiter is rejected at once.
    let waiter: Waiter<T> | undefined;
    while ((waiter = this.#waiters.shift()) !== undefined) {
      if (waiter.settled) continue;
      this.#unqueue(waiter);
      refuse(waiter.receiver, waiterError);
    }
    this.#armDeadline();
    if (this.#backoffTimer !== null) this.#clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = null;
    this.#ready?.reject(waiterError);
    this.#ready = null;
    // 2. Idle resources go now; creations in flight are told to stop.
    for (const entry of this.#idle.toArray()) this.#destroyEntry(entry, 'closed', undefined);
    for (const attempt of this.#creates) attempt.controller.abort(waiterError);

    // 3. Wait for lent resources to come back (graceful close only), then take back the rest.
    if (graceMs > 0) await this.#waitUntil(() => this.#all.size === this.#idle.length || this.#destroyCause !== undefined, graceMs);
    const now = this.#now();
    const outstanding: LeaseInfo[] = [];
    for (const entry of [...this.#all]) {
      if (entry.state === EntryState.LEASED) outstanding.push(this.#leaseInfo(entry, now));
      this.#destroyEntry(entry, 'closed', undefined);
    }
    outstanding.sort((a, b) => b.heldMs - a.heldMs || a.id - b.id);
    // 4. Creations still in flight get at most destroyTimeoutMs to notice the abort; stragglers that
    //    arrive later are destroyed on arrival.
    await this.#waitUntil(() => this.#creates.size === 0, o.destroyTimeoutMs);
    for (const attempt of [...this.#creates]) this.#abandonCreate(attempt, waiterError);
    // Each destroy is bounded by its own (unref'd) timer; this ref'd wait keeps the process alive until
    // they settle or time out, so the caller of close() always gets its report.
    await this.#waitUntil(() => this.#destroys.size === 0, o.destroyTimeoutMs);

    this.#state = CLOSED;
    this.#housekeeper.unregister(this.#task);
    this.#leak.dispose();
    const report: CloseReport = { outstanding, destroyTimeouts: this.#destroyTimeouts };
    unregisterPool(this as Pool<unknown>);
    this.#events.emit('close', { pool: o.name, report });
    if (channels.close.hasSubscribers) channels.close.publish({ pool: this, name: o.name, report });
    this.#events.removeAllListeners();
    return report;
  }

  /** Waits until `done()` holds (re-checked on every state change) or `timeoutMs` passes. */
  #waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | null = null;
      const finish = (): void => {
        this.#closeWake = null;
        if (timer !== null) this.#clock.clearTimeout(timer);
        resolve();
      };
      this.#closeWake = () => {
        if (done()) finish();
      };
      // Ref'd: the caller awaits close(), so the process must not exit before it settles.
      if (timeoutMs !== Infinity) timer = this.#clock.setTimeout(finish, timeoutMs, false);
    });
  }

  /**
   * A timestamp shared by every waiter queued in one batch: under contention thousands of acquires queue
   * per millisecond, and one clock read each would cost more than queueing itself. The stamp is read
   * precisely on first use and dropped by a microtask queued behind the work already pending (the
   * synchronous run and the microtasks queued before it), so it is never older than that work took to
   * run: microseconds, unless that work blocks the event loop (docs/api/pool.md, timestamp precision).
   */
  #batchNow(): number {
    if (this.#batchStamp) return this.#coarseNow;
    this.#batchStamp = true;
    queueMicrotask(this.#endBatch);
    return this.#now();
  }

  readonly #endBatch = (): void => {
    this.#batchStamp = false;
  };

  /** A precise reading the caller took: refreshes the coarse hot-path timestamp, which never goes back. */
  #stamp(now: number): number {
    if (now > this.#coarseNow) this.#coarseNow = now;
    return now;
  }

  /** A precise read of the clock, which also refreshes the coarse hot-path timestamp. */
  #now(): number {
    const now = this.#clock.now();
    this.#coarseNow = now;
    return now;
  }

  #closedError(action: string): PoolClosedError {
    const how = this.#destroyCause === undefined ? 'closed' : 'destroyed';
    return new PoolClosedError(`cannot ${action} pool "${this.#o.name}": it was ${how}`, this.#destroyCause === undefined ? undefined : { cause: this.#destroyCause });
  }

  /** `pool "db": max=10 inUse=10 idle=0 pending=37 creating=0` */
  #state_(): string {
    const idle = this.#idle.length + this.#probing;
    return `pool "${this.#o.name}": max=${this.#o.max} inUse=${this.#all.size - idle} idle=${idle} pending=${this.#pending} creating=${this.#creates.size}`;
  }
}

// The executor of every waiter's promise: one shared function instead of a closure per acquire, which
// under contention is a measurable share of the allocation rate. It runs synchronously inside the Promise
// constructor, so the captured functions are read back before any other acquire can overwrite them.
let capturedResolve: unknown;
let capturedReject: unknown;
function captureResolvers(resolve: unknown, reject: unknown): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

// A receiver runs inside the pool's bookkeeping (a grant happens within another lease's release): its
// exception must reach neither the unrelated caller nor the pool's state. Reported like a throwing
// event listener.
function deliver<T>(receiver: AcquireReceiver<T>, lease: Lease<T>, now: number): void {
  try {
    receiver.onLease(lease, now);
  } catch (error) {
    receiverThrew(error);
  }
}

function refuse<T>(receiver: AcquireReceiver<T>, error: Error): void {
  try {
    receiver.onAcquireError(error);
  } catch (thrown) {
    receiverThrew(thrown);
  }
}

function receiverThrew(error: unknown): void {
  process.emitWarning(`an acquire receiver threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { code: 'LIFEGUARD_RECEIVER' });
}

interface DroppedToken<T> {
  readonly entry: PoolEntry<T>;
  readonly leaseId: number;
}

const LEAK_CODES = { held: 'LG_LEAK_HELD', dropped: 'LG_LEAK_DROPPED', reclaimed: 'LG_LEAK_RECLAIMED' } as const;

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** `lease #3 held 95012 ms (label "job-7"), acquired at src/app.ts:42:18` */
export function describeLease(info: LeaseInfo): string {
  const label = info.label === undefined ? '' : ` (label "${info.label}")`;
  return `lease #${info.id} held ${Math.round(info.heldMs)} ms${label}, acquired at ${info.site ?? '(site not sampled)'}`;
}
