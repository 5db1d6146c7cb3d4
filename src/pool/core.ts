/** The one owner object through which the pool's cold-path modules reach its state and each other: built once, with the pool's hot-path operations. */
import type { Clock } from '../internal/clock.js';
import { Deque } from '../internal/deque.js';
import { WaitQueue, type QueuedWaiter } from '../internal/wait-queue.js';
import type { LeakTracking } from '../leak/leak-detector.js';
import type { AcquireSite } from '../leak/site.js';
import type { PermitWaits } from './budget-option.js';
import { Creation } from './creation.js';
import type { LeaseInfo } from './events.js';
import type { Lease } from './lease.js';
import { LeakWatch, leaseInfo } from './leak-watch.js';
import { Maintenance } from './maintenance.js';
import type { ResolvedPoolOptions } from './options.js';
import { DESTROY_REASONS, EntryState, type DestroyReason, type EntryOwner, type PoolEntry } from './pool-entry.js';
import { Shutdown, type ShutdownHooks } from './shutdown.js';
import type { Signals } from './signals.js';
import { Waiting } from './waiting.js';

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

/** One caller waiting in `acquire()`; for a promise it is its own receiver. */
export type Waiter<T> = PendingAcquire<T>;

/** What few waiting acquires carry: a captured site, a label, an abort signal (and its listener). */
interface WaiterRare {
  readonly site: AcquireSite | null;
  readonly label: string | undefined;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Rejects the promise it resolves (see {@link PendingAcquire.onAcquireError}): resolving a promise with a
 * thenable calls its `then` with the promise's own resolving functions, in a microtask.
 */
class Rejection {
  readonly #error: Error;

  constructor(error: Error) {
    this.#error = error;
  }

  then(_resolve: unknown, reject: (error: Error) => void): void {
    reject(this.#error);
  }
}

/**
 * When waiting acquires started to wait. The acquires that queue in one iteration of the event loop share
 * one stamp instead of one clock read each (under contention thousands queue per millisecond, and a read
 * costs more than queueing): `from` is read when the first of them queues, `at` once they all have (at
 * the next check phase of the event loop, see Pool#queueStamp). Every one of them queued between the two, so a
 * deadline counted from `at` is never early, and late by no more than the rest of that iteration.
 */
export class WaitStamp {
  /** A precise reading taken no later than any of its waiters queued: what their waiting times count from. */
  readonly from: number;
  /** A precise reading taken no earlier than any of its waiters queued: what their deadlines count from. NaN until then. */
  at: number;

  constructor(from: number, at: number) {
    this.from = from;
    this.at = at;
  }
}

/**
 * A waiting acquire, kept small: under contention every caller waits, and the young generation's
 * collections copy every waiter alive at the time (1,000 concurrent borrowers: about 1,000 of them;
 * 324 live bytes per waiter before, 227 now, against 163 for the bench's bare baseline). Its times are
 * a {@link WaitStamp} shared with the waiters of the same event-loop iteration.
 */
export class PendingAcquire<T> implements AcquireReceiver<T>, QueuedWaiter {
  /**
   * Where the outcome goes: the promise's resolve function (set by its executor), or the caller's
   * receiver. One field for both, tested with `typeof`. Only resolve: the reject function, kept alive by
   * every waiter, was a quarter of a waiter's live weight; errors resolve the promise with a
   * {@link Rejection} instead.
   */
  to: AcquireReceiver<T> | ((value: Lease<T> | PromiseLike<Lease<T>>) => void);
  /** Shared with the acquires queued in the same iteration of the event loop. */
  readonly stamp: WaitStamp;
  readonly timeoutMs: number;
  /** Null for an acquire with no captured site, label or signal: the common case, one field instead of four. */
  readonly rare: WaiterRare | null;
  settled: boolean;

  constructor(receiver: AcquireReceiver<T> | null, stamp: WaitStamp, timeoutMs: number, site: AcquireSite | null, label: string | undefined, signal: AbortSignal | undefined) {
    // Null for a promise: the executor sets its resolve function.
    this.to = receiver as AcquireReceiver<T>;
    this.stamp = stamp;
    this.timeoutMs = timeoutMs;
    this.rare = site === null && label === undefined && signal === undefined ? null : { site, label, signal, onAbort: undefined };
    this.settled = false;
  }

  /** What the deadline counts from (see {@link WaitStamp.at}); NaN until the stamp is closed. */
  get enqueuedAt(): number {
    return this.stamp.at;
  }

  /** What the time spent waiting counts from (see {@link WaitStamp.from}). */
  get waitingSince(): number {
    return this.stamp.from;
  }

  /** The waiter itself for a promise, else the caller's receiver. */
  get receiver(): AcquireReceiver<T> {
    return typeof this.to === 'function' ? this : this.to;
  }

  get site(): AcquireSite | null {
    return this.rare === null ? null : this.rare.site;
  }

  get label(): string | undefined {
    return this.rare === null ? undefined : this.rare.label;
  }

  get signal(): AbortSignal | undefined {
    return this.rare === null ? undefined : this.rare.signal;
  }

  get onAbort(): (() => void) | undefined {
    return this.rare === null ? undefined : this.rare.onAbort;
  }

  /** Set by the wait queue for a waiter with a signal, which always has `rare`. */
  set onAbort(listener: (() => void) | undefined) {
    (this.rare as WaiterRare).onAbort = listener;
  }

  /** A promise's waiter is its own receiver. */
  onLease(lease: Lease<T>): void {
    (this.to as (value: Lease<T>) => void)(lease);
  }

  onAcquireError(error: Error): void {
    // Not a PromiseLike by its types (its `then` returns nothing), which resolving does not need.
    (this.to as (value: PromiseLike<never>) => void)(new Rejection(error) as unknown as PromiseLike<never>);
  }
}

/** Counters since construction, as `stats()` reports them. */
export interface PoolCounters {
  created: number;
  createErrors: number;
  acquired: number;
  released: number;
  timeouts: number;
  aborted: number;
  rejectedQueueFull: number;
  validationFailures: number;
  leaks: number;
  dropped: number;
  revoked: number;
  destroyed: Record<DestroyReason, number>;
}

export function newCounters(): PoolCounters {
  return {
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
}

/**
 * The operations only the pool can do: its hot path, its clock stamps and its state, given to the core as
 * they are (no extra call); typed and documented once, on {@link PoolCore}.
 */
export type PoolHooks<T> = Pick<PoolCore<T>, 'now' | 'stamp' | 'settle' | 'isOpen' | 'pump' | 'handOut' | 'unfit' | 'escalate'> & ShutdownHooks;

/**
 * What the pool shares with its modules (creation, maintenance, leak watch, waiting, shutdown): the state
 * they read, the modules themselves, and the few operations they may call. Built once by the pool; the
 * lease's owner too, so a lease ends through the same object.
 */
export class PoolCore<T> implements EntryOwner<T> {
  readonly name: string;
  readonly o: ResolvedPoolOptions<T>;
  readonly clock: Clock;
  /** Every live resource: idle, lent, being validated or reset. */
  readonly all = new Set<PoolEntry<T>>();
  readonly idle = new Deque<PoolEntry<T>>();
  readonly queue: WaitQueue<Waiter<T>>;
  readonly counters = newCounters();
  readonly signals: Signals<T>;
  readonly leak: LeakTracking;
  /** With a budget: this pool's creations waiting for a permit. */
  readonly permitWaits: PermitWaits;
  /**
   * With leak detection, each entry's current lease by `entry.slot`, held strongly until the next
   * housekeeping run registers it for drop detection (or it comes back). An array renewed every few
   * thousand lends (`renewFresh`), not a field of the entry: entries live long, in V8's old space, and
   * storing each new (young) lease into one took the write barrier's slow path, about 55 instructions
   * per acquire (callgrind, 1,000 concurrent); a young array's stores do not.
   */
  fresh: (Lease<T> | null)[] = [];
  /** Slots of `fresh` whose entries were destroyed, for the next entries. */
  readonly #freeSlots: number[] = [];
  /** Validations on borrow: supply already on its way to the queue, so creation must not double it. */
  validatingForQueue = 0;
  /** Idle resources out for a keep-alive probe: counted as idle. */
  probing = 0;
  /** Returned resources being reset: like validations, supply about to reach the queue. */
  resetting = 0;
  // The modules, each built once by the constructor, on this core.
  readonly creation: Creation<T>;
  readonly maintenance: Maintenance<T>;
  readonly leakWatch: LeakWatch<T>;
  readonly waiting: Waiting<T>;
  readonly shutdown: Shutdown<T>;

  // The pool's own operations (PoolHooks), as given.
  readonly now: () => number;
  /** The pool's cheap hot-path timestamp (lags `now()` by at most one housekeeping period). */
  readonly stamp: () => number;
  /** A lease ended (called by the lease). */
  readonly settle: (entry: PoolEntry<T>, destroy: boolean, cause: unknown) => void;
  readonly isOpen: () => boolean;
  /** The one scheduling function: serves waiters, starts validations and creations. */
  readonly pump: () => void;
  /** The one hand-out path for a resource that became free: destroyed if unfit, else to the oldest waiter, else idle. */
  readonly handOut: (entry: PoolEntry<T>, now: number) => void;
  /** The one fitness check before a free resource goes anywhere: destroys it (true) when doomed, closed, expired or its guard ran out. */
  readonly unfit: (entry: PoolEntry<T>, now: number) => boolean;
  /** Pressure or a leak: capture every call site from the next acquire on, for a while. */
  readonly escalate: (now: number) => void;

  constructor(o: ResolvedPoolOptions<T>, clock: Clock, signals: Signals<T>, leak: LeakTracking, permitWaits: PermitWaits, hooks: PoolHooks<T>) {
    this.name = o.name;
    this.o = o;
    this.clock = clock;
    this.signals = signals;
    this.leak = leak;
    this.permitWaits = permitWaits;
    this.now = hooks.now;
    this.stamp = hooks.stamp;
    this.settle = hooks.settle;
    this.isOpen = hooks.isOpen;
    this.pump = hooks.pump;
    this.handOut = hooks.handOut;
    this.unfit = hooks.unfit;
    this.escalate = hooks.escalate;
    this.queue = new WaitQueue<Waiter<T>>(clock, o.acquireTimeoutMs, {
      expired: (waiter, now) => {
        this.waiting.expired(waiter, now);
      },
      aborted: (waiter) => {
        this.waiting.aborted(waiter);
      },
      now: hooks.now,
    });
    this.creation = new Creation(this);
    this.maintenance = new Maintenance(this);
    this.leakWatch = new LeakWatch(this);
    this.waiting = new Waiting(this);
    this.shutdown = new Shutdown(this, hooks);
  }

  /** A new entry joins the pool: it gets a slot in `fresh`. */
  add(entry: PoolEntry<T>): void {
    const slot = this.#freeSlots.pop();
    if (slot === undefined) {
      entry.slot = this.fresh.length;
      this.fresh.push(null);
    } else entry.slot = slot;
    this.all.add(entry);
  }

  /** Replaces `fresh` with a copy in a new (young) array, and returns it; see `fresh`. */
  renewFresh(): (Lease<T> | null)[] {
    return (this.fresh = this.fresh.slice());
  }

  /** Destroys a resource, whatever its state: counted, signalled, and its `factory.destroy` bounded (maintenance). */
  destroyEntry(entry: PoolEntry<T>, reason: DestroyReason, cause: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    const wasLent = entry.state === EntryState.LEASED;
    if (entry.state === EntryState.IDLE) this.idle.remove(entry);
    entry.state = EntryState.DESTROYED;
    entry.endReason = reason;
    if (entry.slot >= 0) {
      this.fresh[entry.slot] = null;
      this.#freeSlots.push(entry.slot);
      entry.slot = -1;
    }
    if (entry.tracked) {
      entry.tracked = false;
      this.leak.untrack(entry);
    }
    if (entry.probing) {
      entry.probing = false;
      this.probing--;
    }
    this.all.delete(entry);
    this.counters.destroyed[reason]++;
    this.signals.destroy(entry, reason, cause, !wasLent && reason !== 'closed' && reason !== 'leak' && reason !== 'revoked' && reason !== 'moved');
    this.maintenance.retire(entry);
  }

  /** A state change a closing pool may be waiting for. */
  wakeClose(): void {
    this.shutdown.wake();
  }

  /** `pool "db": max=10 inUse=10 idle=0 pending=37 creating=0` */
  describeState(): string {
    const idle = this.idle.length + this.probing;
    return `pool "${this.o.name}": max=${this.o.max} inUse=${this.all.size - idle} idle=${idle} pending=${this.queue.pending} creating=${this.creation.size}`;
  }

  leaseInfo(entry: PoolEntry<T>, now: number): LeaseInfo {
    return leaseInfo(this, entry, now);
  }

  /** Creation failed for good (CreateContext.permanent): every waiter fails now, with `cause`. */
  failWaiters(cause: unknown): void {
    this.waiting.refuseAll(() => this.waiting.createFailed(cause));
  }
}

