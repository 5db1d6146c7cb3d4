import type { Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../internal/errors.js';
import { describe, timeoutProblem } from '../internal/options.js';
import { WaitQueue as Line, type QueuedWaiter } from '../internal/wait-queue.js';
import { BudgetAbortedError, BudgetClosedError, PermitLostError } from './errors.js';

/** Options of one {@link Budget.acquire} call. */
export interface BudgetAcquireOptions {
  /** Gives up waiting when aborted: the acquire rejects with `LG_BUDGET_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Deadline of this acquire; past it, it rejects with `LG_BUDGET_TIMEOUT`. @default the budget's `acquireTimeoutMs` */
  readonly timeoutMs?: number;
}

/** The right to hold one connection to the remote the budget protects. */
export interface Permit {
  /** Unique across the fleet: `<holder id>:<n>`. */
  readonly id: string;
  /** The budget's key. */
  readonly budgetKey: string;
  /**
   * Aborted when this process can no longer prove it holds the permit (it could not refresh it in time,
   * the store reclaimed it, or the budget was closed). Its reason is a `PermitLostError`. Whoever holds
   * the connection the permit paid for must close it: another process may be granted the permit next.
   */
  readonly lost: AbortSignal;
  /** True once released (or lost). */
  readonly released: boolean;
  /**
   * Until when (milliseconds of the budget's clock, which must be the pool's) this process can prove it
   * holds the permit; Infinity when nothing can take it away. The pool compares it before lending the
   * connection the permit paid for (`CreateContext.guard`), so a permit about to expire never backs a new lease.
   */
  readonly validUntil: number;
  /** Gives the permit back. Idempotent: a second call, or a call after the permit was lost, does nothing. */
  release(): void;
}

/** What this budget object sees from its own process. */
export interface BudgetStats {
  readonly key: string;
  readonly limit: number;
  /** Permits this process holds now. */
  readonly held: number;
  /** Acquires of this process waiting now. */
  readonly waiting: number;
  /** Counters since construction. */
  readonly acquired: number;
  readonly released: number;
  readonly lost: number;
  readonly timeouts: number;
  readonly aborted: number;
  /** Acquires rejected because the store was unreachable (`LG_BUDGET_UNAVAILABLE`). */
  readonly unavailable: number;
  readonly closed: boolean;
  /**
   * The whole fleet's use as last seen, from the replies of the round trips this process made anyway (no
   * extra one). For `InProcessBudget`, this process now (`ageMs` 0).
   */
  readonly fleet: BudgetFleetView;
}

/** The fleet's use of a budget as one process last saw it. */
export interface BudgetFleetView {
  /** Permits held by every process together. */
  readonly held: number;
  /** Acquires waiting in every process together. */
  readonly waiting: number;
  /** How long ago these figures were read (ms); null before the first round trip. */
  readonly ageMs: number | null;
}

/** The whole fleet's use of the budget, as the store sees it. */
export interface BudgetUsage {
  readonly key: string;
  readonly limit: number;
  /** Permits held by every process together. */
  readonly held: number;
  /** Acquires waiting in every process together. */
  readonly waiting: number;
}

/**
 * Caps how many connections may exist to one remote. `InProcessBudget` shares a cap between the pools of
 * one process; `RedisBudget` between every process of a fleet. Both have this interface, so a pool takes
 * either as its `budget` option.
 */
export interface Budget {
  /** The budget's name: every process that shares the budget uses the same key. */
  readonly key: string;
  /** How many permits may be held at once, fleet-wide for a shared budget. */
  readonly limit: number;
  /** Waits (first come, first served) for a permit. */
  acquire(options?: BudgetAcquireOptions): Promise<Permit>;
  /** This process's view: permits held, waiters, counters. */
  stats(): BudgetStats;
  /** The fleet's view, read from the store (for `InProcessBudget`, the same as `stats()`). */
  usage(): Promise<BudgetUsage>;
  /** Rejects waiters, gives back every permit this process holds (they are reported lost) and releases every handle. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Counters every budget keeps (timeouts and aborts are the wait queue's). */
export interface BudgetCounters {
  acquired: number;
  released: number;
  lost: number;
  unavailable: number;
}

/** The stats both budgets report, from their state. */
export function budgetStats(budget: Pick<Budget, 'key' | 'limit'>, held: number, queue: WaitQueue, counters: BudgetCounters, closed: boolean, fleet: BudgetFleetView): BudgetStats {
  return {
    key: budget.key,
    limit: budget.limit,
    held,
    waiting: queue.length,
    acquired: counters.acquired,
    released: counters.released,
    lost: counters.lost,
    timeouts: queue.timeouts,
    aborted: queue.aborted,
    unavailable: counters.unavailable,
    closed,
    fleet,
  };
}

/** The one Permit implementation: the budget decides what releasing means. */
export class BudgetPermit implements Permit {
  readonly id: string;
  readonly budgetKey: string;
  /** See {@link Permit.validUntil}; a store-backed budget moves it with each refresh. */
  validUntil = Infinity;
  readonly #controller = new AbortController();
  readonly #onRelease: (permit: BudgetPermit) => void;
  #released = false;
  /** Set by a loss ahead of expiry: what the holder's late `release()` does (see {@link lose}). */
  #afterLoss: (() => void) | null = null;

  constructor(id: string, budgetKey: string, onRelease: (permit: BudgetPermit) => void) {
    this.id = id;
    this.budgetKey = budgetKey;
    this.#onRelease = onRelease;
  }

  get lost(): AbortSignal {
    return this.#controller.signal;
  }

  get released(): boolean {
    return this.#released;
  }

  release(): void {
    if (this.#released) {
      // Lost ahead of its expiry: the holder's connection is closed now, the store may count it out.
      const after = this.#afterLoss;
      this.#afterLoss = null;
      after?.();
      return;
    }
    this.#released = true;
    this.#onRelease(this);
  }

  /**
   * Marks the permit lost (the budget has already stopped counting it locally). Returns false if it had
   * already ended. With a `goneAt` still ahead, the store keeps the permit until then or until the holder
   * calls `release()` (its connection is closed), which then calls `afterLoss` once: the holder may finish
   * its current response, and nobody else gets the permit while its connection is still open.
   */
  lose(message: string, cause?: unknown, goneAt = -Infinity, afterLoss?: () => void): boolean {
    if (this.#released) return false;
    this.#released = true;
    this.#afterLoss = afterLoss ?? null;
    this.#controller.abort(new PermitLostError(this.budgetKey, this.id, message, cause === undefined ? undefined : { cause }, goneAt));
    return true;
  }

  toString(): string {
    return `Permit ${this.id} of budget "${this.budgetKey}"`;
  }
}

/** One caller waiting in `acquire()`. */
export interface Waiter extends QueuedWaiter {
  readonly id: string;
  /** Store-side bookkeeping (RedisBudget: whether the ticket is queued in Redis). */
  queued: boolean;
  resolve(permit: Permit): void;
  reject(error: Error): void;
}

export interface WaitQueueHooks {
  /** The deadline passed: the error to reject with. */
  timeoutError(waiter: Waiter, now: number): Error;
  /** A waiter left without a permit (timeout, abort, close): the store may need to forget its ticket. */
  left(waiter: Waiter, reason: 'timeout' | 'abort' | 'error'): void;
}

/**
 * The local, first-in first-out line of acquires, with their deadlines and abort signals: the package's
 * one wait queue (src/internal/wait-queue.ts, one alarm for every deadline) with the budget's errors.
 * Shared by both budgets so that timeouts and aborts behave the same everywhere.
 */
export class WaitQueue {
  readonly #key: string;
  readonly #clock: Clock;
  readonly #hooks: WaitQueueHooks;
  readonly #line: Line<Waiter>;
  timeouts = 0;
  aborted = 0;

  constructor(key: string, clock: Clock, hooks: WaitQueueHooks) {
    this.#key = key;
    this.#clock = clock;
    this.#hooks = hooks;
    // No default timeout to optimise for: every deadline goes to the line's heap.
    this.#line = new Line<Waiter>(clock, NaN, {
      expired: (waiter, now) => {
        this.timeouts++;
        this.#leave(waiter, 'timeout', this.#hooks.timeoutError(waiter, now));
      },
      aborted: (waiter) => {
        this.aborted++;
        const waited = Math.round(this.#clock.now() - waiter.enqueuedAt);
        this.#leave(waiter, 'abort', new BudgetAbortedError(this.#key, `budget "${this.#key}": acquire aborted after ${waited} ms`, { cause: waiter.signal?.reason }));
      },
      now: () => this.#clock.now(),
    });
  }

  get length(): number {
    return this.#line.pending;
  }

  /** Live waiters in arrival order. */
  list(): Waiter[] {
    const waiters: Waiter[] = [];
    this.#line.scan((waiter) => {
      waiters.push(waiter);
      return false;
    });
    return waiters;
  }

  first(): Waiter | undefined {
    return this.#line.next();
  }

  /** Adds a waiter; `start` runs once it is in line (so a synchronous grant sees it). */
  enqueue(id: string, options: BudgetAcquireOptions | undefined, defaultTimeoutMs: number, start: (waiter: Waiter) => void): Promise<Permit> {
    let timeoutMs: number;
    try {
      timeoutMs = acquireTimeout(options, defaultTimeoutMs);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const signal = options?.signal;
    if (signal?.aborted === true) {
      this.aborted++;
      return Promise.reject(new BudgetAbortedError(this.#key, `budget "${this.#key}": acquire aborted before it started`, { cause: signal.reason }));
    }
    return new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = { id, enqueuedAt: this.#clock.now(), timeoutMs, settled: false, queued: false, resolve, reject, signal, onAbort: undefined };
      this.#line.add(waiter);
      start(waiter);
    });
  }

  /** Hands `permit` to `waiter`. Returns false (and leaves the permit alone) if the waiter already left. */
  grant(waiter: Waiter, permit: Permit): boolean {
    if (waiter.settled) return false;
    this.#line.settle(waiter);
    waiter.resolve(permit);
    return true;
  }

  /** Rejects one waiter. */
  fail(waiter: Waiter, error: Error): void {
    if (waiter.settled) return;
    this.#leave(waiter, 'error', error);
  }

  /** Rejects every waiter (close). */
  failAll(error: BudgetClosedError | Error): void {
    for (const waiter of this.list()) this.fail(waiter, error);
  }

  #leave(waiter: Waiter, reason: 'timeout' | 'abort' | 'error', error: Error): void {
    this.#line.settle(waiter);
    this.#hooks.left(waiter, reason);
    waiter.reject(error);
  }
}

function acquireTimeout(options: BudgetAcquireOptions | undefined, fallback: number): number {
  if (options === undefined) return fallback;
  if (typeof options !== 'object' || (options as unknown) === null) {
    throw new InvalidOptionError('options', `invalid budget acquire() options: expected an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'signal' && key !== 'timeoutMs') {
      throw new InvalidOptionError(key, `unknown option "${key}" for budget acquire(); known options: signal, timeoutMs`);
    }
  }
  const given: unknown = options.timeoutMs;
  if (given === undefined) return fallback;
  const problem = timeoutProblem('budget acquire()', given);
  if (problem !== null) throw new InvalidOptionError('timeoutMs', problem);
  return given as number;
}

/** Validates the options every budget shares. */
export function budgetKeyOption(source: Record<string, unknown>, fallback: string | undefined): string {
  const key = source['key'] ?? fallback;
  if (typeof key !== 'string' || key.length === 0 || key.length > 200) {
    throw new InvalidOptionError('key', `invalid option "key": expected a non-empty string of at most 200 characters, got ${describe(key)}`);
  }
  return key;
}

// The shared validators, re-exported for the budgets' modules.
export { clockOption, objectOption } from '../internal/options.js';
