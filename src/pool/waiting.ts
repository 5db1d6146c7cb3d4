/** The pool's waiters off the hot path: timeouts and aborts told with the pool's state, refusals, deliveries to receivers, and lifeguard/http's hand-off and scans. */
import { budgetStatsOf, describeBudget } from './budget-option.js';
import type { AcquireReceiver, PoolCore, Waiter } from './core.js';
import type { Creation } from './creation.js';
import { channels, leasesOf } from './diagnostics.js';
import { AcquireAbortedError, AcquireTimeoutError, CreateFailedError } from './errors.js';
import { kEntry, type Lease } from './lease.js';
import { errorText, timeoutMessage } from './messages.js';
import { EntryState } from './pool-entry.js';

export class Waiting<T> {
  readonly #core: PoolCore<T>;
  readonly #creation: Creation<T>;

  constructor(core: PoolCore<T>) {
    this.#core = core;
    this.#creation = core.creation;
  }

  /** True while a lease is being handed to a receiver; grants made meanwhile wait in #deliveries. */
  #delivering = false;
  /** Triples of (receiver, lease, now) granted during a delivery, handed out by the outermost one. */
  readonly #deliveries: (AcquireReceiver<T> | Lease<T> | number)[] = [];

  /**
   * Hands a lease to its receiver. A receiver may end a lease inside `onLease` (hand it straight back),
   * which grants the next waiter from within this call: without this queue that recursion would grow
   * one frame per waiter and overflow the stack on a long queue. Nested deliveries wait here instead,
   * and the outermost call hands them out in order, after the pool's state is settled.
   */
  deliver(receiver: AcquireReceiver<T>, lease: Lease<T>, now: number): void {
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

  /**
   * `pool[kHandOff](lease)` (symbols.ts): the lease changes hands to the oldest waiter when that waiter is
   * a receiver, without a release and a new lend. False when it cannot: release the lease as usual.
   */
  handOff(lease: Lease<T>): boolean {
    const core = this.#core;
    const queue = core.queue;
    if (queue.pending === 0 || !core.isOpen() || core.leak.enabled || core.o.factory.reset !== undefined) return false;
    const entry = lease[kEntry];
    if (entry.owner !== core || entry.state !== EntryState.LEASED || entry.doomed !== null || entry.revoked !== null || !lease.active) return false;
    const waiter = queue.next();
    if (waiter === undefined || waiter.receiver === waiter) return false;
    const now = core.now();
    if (entry.expiresAt <= now || entry.guard.validUntil <= now) return false;
    const heldMs = now - entry.acquiredAt;
    this.unqueue(waiter);
    core.counters.released++;
    core.counters.acquired++;
    entry.uses++;
    entry.acquiredAt = now;
    entry.site = waiter.site;
    entry.label = waiter.label;
    entry.leakReportedAt = 0;
    if (core.signals.listening || channels.release.hasSubscribers || channels.acquire.hasSubscribers) {
      core.signals.release(entry, heldMs);
      core.signals.acquire(lease, entry, now - waiter.waitingSince);
    }
    this.deliver(waiter.receiver, lease, now);
    return true;
  }

  /** Ends a waiter's wait; fewer waiters may leave creations in flight unwanted. */
  unqueue(waiter: Waiter<T>): void {
    this.#core.queue.settle(waiter);
    if (this.#creation.size > 0) this.#creation.shed();
  }

  /** A waiter's deadline passed: the error says what the pool was doing, who holds what, and why creation fails. */
  expired(waiter: Waiter<T>, now: number): void {
    const core = this.#core;
    const creation = this.#creation;
    const budget = core.o.budget;
    const message = timeoutMessage({
      waitedMs: now - waiter.enqueuedAt,
      state: core.describeState(),
      leases: leasesOf(core, core.now()),
      consecutiveCreateFailures: creation.consecutiveFailures,
      lastCreateError: creation.lastError,
      extra: budget === undefined ? creation.describe(now) : [...creation.describe(now), describeBudget(budgetStatsOf(budget, core.permitWaits))],
    });
    this.unqueue(waiter);
    core.counters.timeouts++;
    core.escalate(now);
    const cause = creation.consecutiveFailures > 0 ? creation.lastError : undefined;
    const error = new AcquireTimeoutError(message, cause === undefined ? undefined : { cause });
    core.signals.timeout(now - waiter.enqueuedAt, error);
    refuse(waiter.receiver, error);
  }

  /** A waiter's signal fired. */
  aborted(waiter: Waiter<T>): void {
    const core = this.#core;
    this.unqueue(waiter);
    core.counters.aborted++;
    const waited = Math.round(core.now() - waiter.waitingSince);
    refuse(waiter.receiver, new AcquireAbortedError(`acquire aborted after ${waited} ms (${core.describeState()})`, { cause: waiter.signal?.reason }));
  }

  /** Every waiter fails now, each with its own error from `error()`. */
  refuseAll(error: () => Error): void {
    const queue = this.#core.queue;
    let waiter: Waiter<T> | undefined;
    while ((waiter = queue.next()) !== undefined) {
      this.unqueue(waiter);
      refuse(waiter.receiver, error());
    }
  }

  /** What an acquire gets while creation fails with an error the factory marked permanent. */
  createFailed(cause: unknown): CreateFailedError {
    const core = this.#core;
    return new CreateFailedError(`cannot lend from pool "${core.o.name}": creation failed with an error marked permanent (${errorText(cause)}); retrying in the background (${core.describeState()})`, { cause });
  }

  /** Gives up the wait of `receiver`, without telling it. A scan of the queue: for failure paths only. */
  withdraw(receiver: AcquireReceiver<T>): boolean {
    let found: Waiter<T> | undefined;
    this.#core.queue.scan((waiter) => {
      if (waiter.receiver !== receiver) return false;
      found = waiter;
      return true;
    });
    if (found === undefined) return false;
    this.unqueue(found);
    return true;
  }

  /** The receivers waiting, oldest first (promises excluded), at most `max`. A scan: for failure and shutdown paths. */
  receivers(max: number): AcquireReceiver<T>[] {
    const receivers: AcquireReceiver<T>[] = [];
    if (max <= 0) return receivers;
    this.#core.queue.scan((waiter) => {
      if (waiter.receiver !== waiter) receivers.push(waiter.receiver);
      return receivers.length >= max;
    });
    return receivers;
  }
}

// A receiver runs inside the pool's bookkeeping (a grant happens within another lease's release): its
// exception must reach neither the unrelated caller nor the pool's state. Reported like a throwing
// event listener.
export function deliver<T>(receiver: AcquireReceiver<T>, lease: Lease<T>, now: number): void {
  try {
    receiver.onLease(lease, now);
  } catch (error) {
    receiverThrew(error);
  }
}

export function refuse<T>(receiver: AcquireReceiver<T>, error: Error): void {
  try {
    receiver.onAcquireError(error);
  } catch (thrown) {
    receiverThrew(thrown);
  }
}

function receiverThrew(error: unknown): void {
  process.emitWarning(`an acquire receiver threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { code: 'LIFEGUARD_RECEIVER' });
}
