/** The one owner interface through which the pool's cold-path modules reach its state: no module sees the others' insides. */
import type { Clock } from '../internal/clock.js';
import type { Deque } from '../internal/deque.js';
import type { QueuedWaiter, WaitQueue } from '../internal/wait-queue.js';
import type { LeakTracking } from '../leak/leak-detector.js';
import type { AcquireSite } from '../leak/site.js';
import type { LeaseInfo } from './events.js';
import type { Lease } from './lease.js';
import type { ResolvedPoolOptions } from './options.js';
import { DESTROY_REASONS, type DestroyReason, type EntryOwner, type PoolEntry } from './pool-entry.js';
import type { Signals } from './signals.js';

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
export interface Waiter<T> extends AcquireReceiver<T>, QueuedWaiter {
  receiver: AcquireReceiver<T>;
  readonly site: AcquireSite | null;
  readonly label: string | undefined;
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
 * What the pool shares with its modules (creation, maintenance, leak watch, shutdown): the state they
 * read and the few operations they may call. Built once by the pool; the lease's owner too, so a lease
 * ends through the same object.
 */
export interface PoolCore<T> extends EntryOwner<T> {
  readonly o: ResolvedPoolOptions<T>;
  readonly clock: Clock;
  /** Every live resource: idle, lent, being validated or reset. */
  readonly all: Set<PoolEntry<T>>;
  readonly idle: Deque<PoolEntry<T>>;
  readonly queue: WaitQueue<Waiter<T>>;
  readonly counters: PoolCounters;
  readonly signals: Signals<T>;
  readonly leak: LeakTracking;
  /** Validations on borrow: supply already on its way to the queue, so creation must not double it. */
  validatingForQueue: number;
  /** Idle resources out for a keep-alive probe: counted as idle. */
  probing: number;
  /** Returned resources being reset: like validations, supply about to reach the queue. */
  resetting: number;
  isOpen(): boolean;
  /** The one scheduling function: serves waiters, starts validations and creations. */
  pump(): void;
  /** The one hand-out path for a resource that became free: destroyed if unfit, else to the oldest waiter, else idle. */
  handOut(entry: PoolEntry<T>, now: number): void;
  /** The one fitness check before a free resource goes anywhere: destroys it (true) when doomed, closed, expired or its guard ran out. */
  unfit(entry: PoolEntry<T>, now: number): boolean;
  destroyEntry(entry: PoolEntry<T>, reason: DestroyReason, cause: unknown): void;
  /** A state change a closing pool may be waiting for. */
  wakeClose(): void;
  /** `pool "db": max=10 inUse=10 idle=0 pending=37 creating=0` */
  describeState(): string;
  /** Pressure or a leak: capture every call site from the next acquire on, for a while. */
  escalate(now: number): void;
  leaseInfo(entry: PoolEntry<T>, now: number): LeaseInfo;
  /** Creation failed for good (CreateContext.permanent): every waiter fails now, with `cause`. */
  failWaiters(cause: unknown): void;
}
