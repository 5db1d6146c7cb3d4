/** The pool's waiters off the hot path: timeouts and aborts told with the pool's state, refusals, and scans for lifeguard/http. */
import { budgetStatsOf, describeBudget, type PermitWaits } from './budget-option.js';
import type { AcquireReceiver, PoolCore, Waiter } from './core.js';
import type { Creation } from './creation.js';
import { leasesOf } from './diagnostics.js';
import { AcquireAbortedError, AcquireTimeoutError, CreateFailedError } from './errors.js';
import type { Lease } from './lease.js';
import { errorText, timeoutMessage } from './messages.js';

export class Waiting<T> {
  readonly #core: PoolCore<T>;
  readonly #creation: Creation<T>;
  readonly #permitWaits: PermitWaits;

  constructor(core: PoolCore<T>, creation: Creation<T>, permitWaits: PermitWaits) {
    this.#core = core;
    this.#creation = creation;
    this.#permitWaits = permitWaits;
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
      extra: budget === undefined ? creation.describe(now) : [...creation.describe(now), describeBudget(budgetStatsOf(budget, this.#permitWaits))],
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
    const waited = Math.round(core.now() - waiter.enqueuedAt);
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
