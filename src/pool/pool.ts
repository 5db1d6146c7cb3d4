/** The generic pool: its public API and the hot path (acquire, lend, release, hand-out, #pump, clock stamps). */
/* eslint-disable @typescript-eslint/no-unnecessary-boolean-literal-compare -- `flag === true` on purpose: a boolean field tested bare compiles to V8's generic truthiness test (false, '', undetectable, number, bigint: about ten instructions), compared with `true` to one. */
import { systemClock, type Clock } from '../internal/clock.js';
import type { Deque } from '../internal/deque.js';
import type { Listener } from '../internal/emitter.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import type { WaitQueue } from '../internal/wait-queue.js';
import { LEAK_ESCALATION_MS, LeakDetector, NO_LEAK_DETECTION, type LeakTracking } from '../leak/leak-detector.js';
import { AcquireSite } from '../leak/site.js';
import { withBudget, type PermitWaits } from './budget-option.js';
import { PendingAcquire, PoolCore, WaitStamp, type AcquireReceiver, type PoolCounters, type Waiter } from './core.js';
import type { Creation } from './creation.js';
import { channels, inspectResources, leasesOf, type PoolInspection } from './diagnostics.js';
import { describe } from '../internal/options.js';
import { AcquireAbortedError, InvalidArgumentError, QueueFullError } from './errors.js';
import type { LeaseInfo, PoolEvents } from './events.js';
import type { LeakWatch } from './leak-watch.js';
import { Lease, checkOwn } from './lease.js';
import type { Maintenance } from './maintenance.js';
import { checkAcquireOptions, resolvePoolOptions, type AcquireOptions, type CloseOptions, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { EntryState, NO_GUARD, type PoolEntry } from './pool-entry.js';
import { registerPool, unregisterPool } from './registry.js';
import type { CloseReport, Shutdown } from './shutdown.js';
import { Signals } from './signals.js';
import { poolStats, type PoolStats } from './stats.js';
import { kAcquireInto, kHandOff, kReading, kWaiting, kWithdraw } from './symbols.js';
import { refuse, type Waiting } from './waiting.js';

export type { AcquireReceiver } from './core.js';
export type { CloseReport } from './shutdown.js';
export type { CloseOptions } from './options.js';
export { describeLease } from './messages.js';
export { kAcquireInto, kHandOff, kReading, kWaiting, kWithdraw } from './symbols.js';

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** The core's `fresh` array is renewed when a lease id has these bits clear: every 4,096 lends. */
const RENEW_FRESH_MASK = 4095;
// Module constants, not EntryState's properties: an imported object's property is a load and a check
// in compiled code, a module constant is folded into it.
const IDLE = EntryState.IDLE;
const LEASED = EntryState.LEASED;
// Likewise the hot path's imported objects: an imported binding is a load and a hole check in compiled
// code (it may still be uninitialized), a module constant is folded into it (callgrind, 1,000
// concurrent: 2,929 -> 2,889 instructions/op).
const UNGUARDED = NO_GUARD;
const ACQUIRE_CHANNEL = channels.acquire;
const QUEUE_CHANNEL = channels.queue;
const RELEASE_CHANNEL = channels.release;
const LeaseClass = Lease;
const PendingAcquireClass = PendingAcquire;

/**
 * A generic resource pool that cannot leak a handle, cannot hang, and says what is wrong when it is
 * exhausted.
 *
 * Every state change ends in {@link Pool.#pump}, the one scheduling function: it hands idle resources to
 * waiters in arrival order, starts validations, and starts creations when (and only when) waiters or
 * `min` need them. A resource that becomes free goes through {@link Pool.#handOut}, the one hand-out
 * path. Cold paths live in modules reached through one {@link PoolCore}: creation.ts, maintenance.ts,
 * leak-watch.ts, shutdown.ts, messages.ts, signals.ts, and the wait queue (src/internal/wait-queue.ts).
 */
export class Pool<T> {
  readonly #o: ResolvedPoolOptions<T>;
  readonly #clock: Clock;
  readonly #core: PoolCore<T>;
  readonly #signals: Signals<T>;
  readonly #leak: LeakTracking;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  readonly #lifo: boolean;
  // Options the hot path reads, as fields of the pool (one load each, not two).
  readonly #max: number;
  readonly #maxConcurrentCreates: number;
  readonly #maxWaiting: number;
  readonly #acquireTimeoutMs: number;
  /** The factory has `reset`: a returned resource is reset before it is lent again. */
  readonly #resets: boolean;
  // The core's state and modules, read from these fields on the hot path (no indirection through the core).
  readonly #all: Set<PoolEntry<T>>;
  readonly #idle: Deque<PoolEntry<T>>;
  readonly #queue: WaitQueue<Waiter<T>>;
  readonly #counters: PoolCounters;
  readonly #creation: Creation<T>;
  readonly #maintenance: Maintenance<T>;
  readonly #leakWatch: LeakWatch<T>;
  readonly #shutdown: Shutdown<T>;
  readonly #waiting: Waiting<T>;

  #state = OPEN;
  #leaseSeq = 0;
  #pumping = false;
  #pumpAgain = false;
  /**
   * A cheap timestamp for the hot path: reading the clock costs more than the rest of an acquire and
   * release together. Refreshed by every housekeeping run and every precise read (#now); it lags real
   * time by at most one housekeeping period, which bounds the error of lease ages and idle times.
   */
  #coarseNow: number;
  /** The factory has `validate`: an idle resource may need validating, and validation and keep-alive compare idle times against small thresholds, so they need exact stamps. */
  readonly #preciseIdle: boolean;
  /** Acquires until the next call-site capture (leak detection's sampling, counted here: no call per acquire). */
  #captureIn: number;
  /** Sampled mode: capture while the pool is partly in use, sample only while it is saturated (see #acquire). */
  readonly #captureUnderLoad: boolean;
  /** Sampled mode: a quiet pool's acquires capture their site until then (escalation; always with leakSampleRate 1). */
  #captureAllUntil: number;
  /** The core's `fresh` (the same array, one load less on the hot path). */
  #fresh: (Lease<T> | null)[];
  /** The stamp of the acquires queued in this iteration of the event loop, until #closeStamp (see #queueStamp). */
  #openStamp: WaitStamp | null = null;
  /** The immediate that runs #closeStamp. */
  #stampCloser: NodeJS.Immediate | null = null;

  constructor(options: PoolOptions<T>) {
    // The budget option wraps the factory: a permit before each create, given back after each destroy.
    const permitWaits: PermitWaits = { creates: 0 };
    const o = withBudget(resolvePoolOptions(options), permitWaits);
    this.#o = o;
    const clock = o.clock ?? systemClock;
    this.#clock = clock;
    this.#lifo = o.idleOrder === 'lifo';
    this.#max = o.max;
    this.#maxConcurrentCreates = o.maxConcurrentCreates;
    this.#maxWaiting = o.maxWaiting;
    this.#acquireTimeoutMs = o.acquireTimeoutMs;
    this.#resets = o.factory.reset !== undefined;
    this.#coarseNow = clock.now();
    this.#preciseIdle = o.factory.validate !== undefined;
    this.#signals = new Signals<T>(this, o.name);
    this.#leak = o.leakDetection === 'off'
      ? NO_LEAK_DETECTION
      : new LeakDetector(o.leakDetection, o.leakSampleRate, (token) => {
        this.#leakWatch.onDropped(token);
      });
    const core = new PoolCore<T>(o, clock, this.#signals, this.#leak, permitWaits, {
      now: () => this.#now(),
      stamp: () => this.#coarseNow,
      settle: (entry, destroy, cause) => {
        this.#settle(entry, destroy, cause);
      },
      isOpen: () => this.#state === OPEN,
      pump: () => {
        this.#pump();
      },
      handOut: (entry, now) => {
        this.#handOut(entry, now);
      },
      unfit: (entry, now) => this.#unfit(entry, now),
      escalate: (now) => {
        this.#escalate(now);
      },
      closing: () => {
        this.#state = CLOSING;
      },
      closed: (report) => {
        this.#state = CLOSED;
        if (this.#stampCloser !== null) clearImmediate(this.#stampCloser);
        this.#closeStamp();
        this.#housekeeper.unregister(this.#task);
        this.#leak.dispose();
        unregisterPool(this as Pool<unknown>);
        this.#signals.close(report);
        this.#signals.events.removeAllListeners();
      },
    });
    this.#core = core;
    this.#all = core.all;
    this.#idle = core.idle;
    this.#queue = core.queue;
    this.#counters = core.counters;
    this.#creation = core.creation;
    this.#maintenance = core.maintenance;
    this.#leakWatch = core.leakWatch;
    this.#waiting = core.waiting;
    this.#fresh = core.fresh;
    this.#shutdown = core.shutdown;
    this.#captureIn = this.#leak.nextCapture(this.#coarseNow);
    this.#captureUnderLoad = o.leakDetection === 'sampled';
    this.#captureAllUntil = o.leakSampleRate >= 1 ? Infinity : -Infinity;
    this.#housekeeper = Housekeeper.for(clock);
    this.#task = {
      periodMs: o.housekeepingIntervalMs,
      run: (now) => {
        this.#coarseNow = now;
        this.#housekeep(now);
      },
    };
    this.#housekeeper.register(this.#task);
    registerPool(this as Pool<unknown>);
    this.#signals.open();
    if (o.min > 0) this.#pump();
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
    this.#signals.listening = true;
    this.#signals.events.on(event, listener);
    return this;
  }

  once<K extends keyof PoolEvents<T>>(event: K, listener: Listener<PoolEvents<T>[K]>): this {
    this.#signals.listening = true;
    this.#signals.events.once(event, listener);
    return this;
  }

  off<K extends keyof PoolEvents<T>>(event: K, listener: Listener<PoolEvents<T>[K]>): this {
    this.#signals.events.off(event, listener);
    return this;
  }

  /** Resolves once `min` resources exist; rejects with the creation error if the first attempt to get there fails. */
  ready(): Promise<void> {
    return this.#creation.ready(() => this.#shutdown.closedError('wait for ready() on'));
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
    return this.#waiting.withdraw(receiver);
  }

  /** @internal See {@link AcquireReceiver}. */
  [kAcquireInto](receiver: AcquireReceiver<T>, options?: AcquireOptions, now?: number): void {
    // With a receiver nothing is returned: the outcome goes to the receiver.
    void this.#acquire(options, this[kAcquireInto], receiver, now);
  }

  /** @internal See {@link kWaiting}. A scan of the queue: for failure and shutdown paths only. */
  [kWaiting](max = Infinity): AcquireReceiver<T>[] {
    return this.#waiting.receivers(max);
  }

  /** @internal See {@link kReading}. */
  get [kReading](): number {
    return this.#coarseNow;
  }

  /** @internal See {@link kHandOff}. */
  [kHandOff](lease: Lease<T>): boolean {
    return this.#waiting.handOff(lease);
  }

  /** Runs `fn` with a resource: released when `fn` settles successfully, destroyed when it throws. */
  async use<R>(fn: (resource: T, lease: Lease<T>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<R> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', `pool.use(fn) needs a function, got ${describe(fn)}; nothing was acquired (pool "${this.#o.name}")`);
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
    checkOwn(lease, this.#core, 'release');
    lease.release();
  }

  /** Same as `lease.destroy(reason)`, but checks that the lease belongs to this pool. */
  destroyLease(lease: Lease<T>, reason?: unknown): void {
    checkOwn(lease, this.#core, 'destroy');
    lease.destroy(reason);
  }

  /** The outstanding leases, oldest first, with how long they have been held and where they were acquired. */
  leases(): LeaseInfo[] {
    return leasesOf(this.#core, this.#now());
  }

  /**
   * Every live resource with its state, age, current lease and TCP socket: what the doctor joins to the
   * kernel's socket table. A snapshot; the sockets are the live objects.
   */
  inspect(): PoolInspection {
    return { name: this.#o.name, stats: this.stats(), resources: inspectResources(this.#core, this.#now()) };
  }

  /** A snapshot of sizes and counters. */
  stats(): PoolStats {
    return poolStats(this.#core, this.#creation.size, this.#maintenance.destroys.size, this.#state !== OPEN, this.#core.permitWaits);
  }

  /**
   * Stops lending and closes gracefully: waiters are rejected, idle resources destroyed, and outstanding
   * leases awaited up to `timeoutMs`; then their resources are destroyed and the leases reported. Never
   * hangs: every factory call it waits for is bounded by its own timeout. Afterwards the pool holds no
   * timer, socket or listener.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    return this.#shutdown.close(options);
  }

  /**
   * Fails everything at once: waiters reject with `LG_POOL_CLOSED` (cause: `error`), creations are
   * aborted, and every resource, lent or not, is destroyed. Resolves when the destroys have settled.
   */
  destroy(error?: unknown): Promise<CloseReport> {
    return this.#shutdown.destroy(error);
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
    if (this.#state !== OPEN) return this.#refuse(receiver, this.#shutdown.closedError('acquire from'));
    let timeoutMs = this.#acquireTimeoutMs;
    let label: string | undefined;
    let signal: AbortSignal | undefined;
    let site: AcquireSite | null = null;
    if (options !== undefined) {
      const invalid = checkAcquireOptions(options);
      if (invalid !== null) return this.#refuse(receiver, invalid);
      if (options.timeoutMs !== undefined) timeoutMs = options.timeoutMs;
      label = options.label;
      signal = options.signal;
      if (signal?.aborted === true) {
        this.#counters.aborted++;
        return this.#refuse(receiver, new AcquireAbortedError(`acquire aborted before it started (${this.#core.describeState()})`, { cause: signal.reason }));
      }
      // The caller captured the site itself (it acquires on someone else's behalf): nothing to capture here.
      if (options.site !== undefined) site = options.site instanceof AcquireSite ? options.site : new AcquireSite(options.site);
    }
    // Read once: the sampling below, the fast path's test and the queued path all need them.
    const pending = this.#queue.pending;
    const idle = this.#idle.length;
    if (site !== null) {
      // Given by the caller.
    } else if (this.#captureUnderLoad === true) {
      // Sampled mode. Leaks come in bursts, and a burst is what exhausts a pool: while other leases are
      // out (or waiting) and the pool is not yet saturated, every acquire captures its site. A quiet
      // pool's acquires (the uncontended hot path) capture nothing unless escalated: a lease leaked
      // there keeps the pool busy, so the next leak is captured, and its report escalates. Only a
      // saturated pool's acquires are sampled (every one while escalated).
      const busy = this.#all.size - idle + pending;
      if (busy === 0 ? this.#coarseNow < this.#captureAllUntil : busy < this.#max || --this.#captureIn <= 0) {
        site = this.#leak.capture(callee);
        if (this.#captureIn <= 0) this.#captureIn = this.#leak.nextCapture(this.#coarseNow);
      }
    } else if (--this.#captureIn <= 0) {
      site = this.#leak.capture(callee);
      this.#captureIn = this.#leak.nextCapture(this.#coarseNow);
    }

    // Fast path: nobody is queued ahead (first-in first-out), and an idle resource needs no validation.
    if (pending === 0 && idle > 0) {
      const now = given === undefined ? (this.#preciseIdle === true ? this.#now() : this.#coarseNow) : this.#stamp(given);
      let entry: PoolEntry<T> | undefined;
      while ((entry = this.#lifo ? this.#idle.pop() : this.#idle.shift()) !== undefined) {
        if (this.#unfit(entry, now)) continue;
        if (this.#preciseIdle && this.#maintenance.needsValidation(entry, now)) {
          // Put it back where it was: the pump validates it for the queue head, which will be this caller.
          if (this.#lifo) this.#idle.push(entry);
          else this.#idle.unshift(entry);
        } else {
          const lease = this.#lend(entry, now, site, label);
          if (this.#signals.listening === true || ACQUIRE_CHANNEL.hasSubscribers) this.#signals.acquire(lease, entry, 0);
          if (receiver === null) return Promise.resolve(lease);
          this.#waiting.deliver(receiver, lease, now);
          return undefined;
        }
        break;
      }
    }

    const creation = this.#creation;
    const permanent = creation.permanentError;
    if (permanent !== undefined && this.#all.size + creation.size < this.#max) {
      // It would wait for a creation that fails for good until someone fixes the cause.
      return this.#refuse(receiver, this.#waiting.createFailed(permanent));
    }
    if (this.#queue.pending >= this.#maxWaiting) {
      this.#counters.rejectedQueueFull++;
      return this.#refuse(receiver, new QueueFullError(`acquire rejected: the wait queue is full (maxWaiting=${this.#o.maxWaiting}; ${this.#core.describeState()})`));
    }
    let stamp: WaitStamp;
    if (given !== undefined) {
      const now = this.#stamp(given);
      stamp = new WaitStamp(now, now);
    } else if (timeoutMs === this.#acquireTimeoutMs) {
      stamp = this.#openStamp ?? this.#queueStamp();
    } else {
      // Its own timeout: kept by deadline in a heap, which needs the deadline now.
      const now = this.#now();
      stamp = new WaitStamp(now, now);
    }
    const waiter = new PendingAcquireClass<T>(receiver, stamp, timeoutMs, site, label, signal);
    let promise: Promise<Lease<T>> | undefined;
    if (receiver === null) {
      // A closure per acquire, written into the young waiter. A shared executor that parked the resolving
      // functions in module variables cost more: those live in old space, so each store took the write
      // barrier's slow path (callgrind, 1,000 concurrent: 3,529 -> 3,293 instructions per op).
      promise = new Promise<Lease<T>>((resolve) => {
        waiter.to = resolve;
      });
    }
    this.#queue.add(waiter);
    creation.refBackoff();
    if (this.#signals.listening === true || QUEUE_CHANNEL.hasSubscribers) this.#signals.queue(this.#queue.pending);
    // Under contention nothing is idle and nothing can be created: skip the scheduler entirely.
    const creating = creation.size;
    if (this.#idle.length > 0 || (this.#all.size + creating < this.#max && creating < this.#maxConcurrentCreates)) this.#pump();
    return promise;
  }

  /** An acquire that fails before queueing: a rejected promise, or the receiver told at once. */
  #refuse(receiver: AcquireReceiver<T> | null, error: Error): Promise<never> | undefined {
    if (receiver === null) return Promise.reject(error);
    refuse(receiver, error);
    return undefined;
  }

  #lend(entry: PoolEntry<T>, now: number, site: AcquireSite | null, label: string | undefined): Lease<T> {
    const id = ++this.#leaseSeq;
    entry.state = LEASED;
    entry.uses++;
    entry.leaseId = id;
    entry.acquiredAt = now;
    entry.site = site;
    entry.label = label;
    entry.leakReportedAt = 0;
    const lease = new LeaseClass(entry, id, site, label);
    // Held strongly only until the next housekeeping run registers it for drop detection; leases that
    // come back before then (nearly all) never pay for the FinalizationRegistry.
    if (this.#leak.enabled === true) {
      // A new young array every few thousand lends (PoolCore.fresh); only a small one, as the wait queue's.
      if ((id & RENEW_FRESH_MASK) === 0 && this.#fresh.length <= RENEW_FRESH_MASK) this.#fresh = this.#core.renewFresh();
      this.#fresh[entry.slot] = lease;
    }
    this.#counters.acquired++;
    return lease;
  }

  /** Lends `entry` to `waiter`, already taken out of the queue (`queue.take()`). */
  #grant(waiter: Waiter<T>, entry: PoolEntry<T>, now: number): void {
    // One waiter fewer may leave creations in flight unwanted.
    if (this.#creation.size > 0) this.#creation.shed();
    const lease = this.#lend(entry, now, waiter.site, waiter.label);
    if (this.#signals.listening === true || ACQUIRE_CHANNEL.hasSubscribers) this.#signals.acquire(lease, entry, this.#now() - waiter.waitingSince);
    // A promise's resolve cannot re-enter the pool: only receivers need the re-entrancy queue.
    const to = waiter.to;
    if (typeof to === 'function') to(lease);
    else this.#waiting.deliver(to, lease, now);
  }

  // ---------------------------------------------------------------------------------------------------
  // The scheduler and the one hand-out path

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
        this.#creation.maybeCreate();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by re-entrant calls in the body
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #serveWaiters(): void {
    const queue = this.#queue;
    if (queue.pending === 0 || this.#idle.length === 0) return;
    const now = this.#preciseIdle === true ? this.#now() : this.#coarseNow;
    while (queue.pending > this.#core.validatingForQueue && this.#idle.length > 0) {
      const entry = (this.#lifo ? this.#idle.pop() : this.#idle.shift()) as PoolEntry<T>;
      if (this.#unfit(entry, now)) continue;
      if (this.#preciseIdle && this.#maintenance.needsValidation(entry, now)) {
        this.#maintenance.validateForQueue(entry);
        continue;
      }
      const waiter = queue.take();
      if (waiter === undefined) {
        this.#pushIdle(entry);
        return;
      }
      this.#grant(waiter, entry, now);
    }
  }

  /**
   * The one check before a free resource goes anywhere, written once: a resource that is doomed (broken
   * while out), belongs to a closing pool, is past its lifetime, or whose guard ran out is destroyed
   * (true), never lent. A finite guard is compared with a precise reading, not the hot path's coarse
   * stamp: a permit must not back a lease even one housekeeping period after it lapsed.
   */
  #unfit(entry: PoolEntry<T>, now: number): boolean {
    if (entry.doomed !== null) this.#core.destroyEntry(entry, entry.doomed, entry.doomedCause);
    else if (this.#state !== OPEN) this.#core.destroyEntry(entry, 'closed', undefined);
    else if (entry.expiresAt <= now) this.#core.destroyEntry(entry, 'lifetime', undefined);
    else if (entry.guard.validUntil !== Infinity && entry.guard.validUntil <= this.#clock.now()) this.#core.destroyEntry(entry, 'revoked', undefined);
    else return false;
    return true;
  }

  /** The one hand-out path: a free resource goes to the oldest waiter, or becomes idle; an unfit one is destroyed. */
  #handOut(entry: PoolEntry<T>, now: number): void {
    // #unfit's common case inline (fit, no guard): the release that hands over under contention.
    if ((entry.doomed !== null || entry.guard !== UNGUARDED || entry.expiresAt <= now || this.#state !== OPEN) && this.#unfit(entry, now)) {
      // Waiters or `min` may need a replacement; a closing pool may be done.
      this.#shutdown.wake();
      this.#pump();
      return;
    }
    if (this.#queue.pending > 0) {
      const waiter = this.#queue.take();
      if (waiter !== undefined) {
        this.#grant(waiter, entry, now);
        return;
      }
    }
    entry.idleSince = now;
    this.#pushIdle(entry);
  }

  #pushIdle(entry: PoolEntry<T>): void {
    entry.state = IDLE;
    this.#idle.push(entry);
  }

  // ---------------------------------------------------------------------------------------------------
  // Return and destroy

  /** A lease ended (called by the lease, through the core). */
  #settle(entry: PoolEntry<T>, destroy: boolean, cause: unknown): void {
    const now = this.#preciseIdle === true ? this.#now() : this.#coarseNow;
    if (this.#leak.enabled === true) this.#fresh[entry.slot] = null;
    if (entry.tracked === true) {
      entry.tracked = false;
      this.#leak.untrack(entry);
    }
    this.#counters.released++;
    if (this.#signals.listening === true || RELEASE_CHANNEL.hasSubscribers) this.#signals.release(entry, this.#now() - entry.acquiredAt);
    if (entry.leakReportedAt !== 0) this.#leakWatch.returned(entry, this.#now());
    if (this.#resets === false && !destroy) {
      this.#handOut(entry, now);
      return;
    }
    if (destroy) this.#core.destroyEntry(entry, 'error', cause);
    else if (!this.#unfit(entry, now)) {
      this.#maintenance.reset(entry);
      return;
    }
    // A resource was destroyed: waiters or `min` may need a replacement; a closing pool may be done.
    this.#shutdown.wake();
    this.#pump();
  }

  // ---------------------------------------------------------------------------------------------------
  // Housekeeping, timestamps, texts

  #housekeep(now: number): void {
    if (this.#state !== OPEN) return;
    if (this.#leak.enabled) this.#leakWatch.sweep(now);
    this.#maintenance.sweepIdle(now);
    // Refill to min, retry creations for waiters.
    this.#pump();
  }

  /** Pressure or a leak: capture every call site from the next acquire on, for a while (see LeakTracking). */
  #escalate(now: number): void {
    this.#leak.escalate(now);
    this.#captureIn = 1;
    if (this.#captureAllUntil < now + LEAK_ESCALATION_MS) this.#captureAllUntil = now + LEAK_ESCALATION_MS;
  }

  /**
   * The stamp of the acquires that queue in this iteration of the event loop. Opened by the first with
   * a precise read, and closed (a second read, see WaitStamp) by an immediate, which runs once the
   * iteration's callbacks and their microtasks are done: two clock reads and one immediate per
   * iteration instead of one read per acquire. A reaction queued behind the pending microtasks closed
   * an earlier design's batch; under contention every few acquires paid for a read and a reaction (1,000
   * concurrent borrowers: one each per 10 acquires, 8% of the wall time).
   */
  #queueStamp(): WaitStamp {
    const stamp = new WaitStamp(this.#now(), NaN);
    this.#openStamp = stamp;
    this.#stampCloser = setImmediate(this.#closeStamp);
    return stamp;
  }

  /** Every acquire of the stamp has queued: their deadlines are known, and the alarm is armed for them. */
  readonly #closeStamp = (): void => {
    const stamp = this.#openStamp;
    this.#stampCloser = null;
    if (stamp === null) return;
    this.#openStamp = null;
    stamp.at = this.#now();
    this.#queue.rearm();
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
}

