import { systemClock, type Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../internal/errors.js';
import { durationOption, numberOption, rejectUnknownKeys } from '../internal/options.js';
import { BudgetPermit, WaitQueue, budgetKeyOption, budgetStats, type BudgetCounters, clockOption, objectOption, type Budget, type BudgetAcquireOptions, type BudgetStats, type BudgetUsage, type Permit } from './budget.js';
import { BudgetClosedError, BudgetTimeoutError } from './errors.js';

export interface InProcessBudgetOptions {
  /** Most permits held at once. Required. */
  readonly limit: number;
  /** Name used in messages and stats. @default `"budget-<n>"` */
  readonly key?: string;
  /** Default deadline of `acquire()`. @default 30000 */
  readonly acquireTimeoutMs?: number;
  /** Time source, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
}

const KNOWN = new Set(['limit', 'key', 'acquireTimeoutMs', 'clock']);
let budgetCounter = 0;

/**
 * A budget shared by the pools of one process: at most `limit` permits exist at once, and waiters are
 * served first-in first-out. Permits are never lost while the budget is open; `close()` revokes them.
 */
export class InProcessBudget implements Budget {
  readonly key: string;
  readonly limit: number;
  readonly #acquireTimeoutMs: number;
  readonly #clock: Clock;
  readonly #queue: WaitQueue;
  readonly #held = new Set<BudgetPermit>();
  #seq = 0;
  #closed = false;
  readonly #counters: BudgetCounters = { acquired: 0, released: 0, lost: 0, unavailable: 0 };

  constructor(options: InProcessBudgetOptions) {
    const source = objectOption(options, 'InProcessBudget');
    rejectUnknownKeys(source, KNOWN, 'InProcessBudget');
    if (source['limit'] === undefined) throw new InvalidOptionError('limit', 'invalid option "limit": required (the most permits held at once), got undefined');
    this.limit = numberOption(source, 'limit', 0, { integer: true, min: 1 });
    this.key = budgetKeyOption(source, `budget-${++budgetCounter}`);
    this.#acquireTimeoutMs = durationOption(source, 'acquireTimeoutMs', 30_000, { min: 1, allowInfinity: true });
    this.#clock = clockOption(source) ?? systemClock;
    this.#queue = new WaitQueue(this.key, this.#clock, {
      timeoutError: (waiter, now) => new BudgetTimeoutError(this.key, {
        limit: this.limit,
        held: this.#held.size,
        waiting: this.#queue.length,
        heldHere: this.#held.size,
        seenAgoMs: 0,
        waitedMs: now - waiter.enqueuedAt,
      }),
      left: () => {
        // A waiter that gave up may have been the head of the line: the next one may fit now.
        this.#serve();
      },
    });
  }

  acquire(options?: BudgetAcquireOptions): Promise<Permit> {
    if (this.#closed) return Promise.reject(new BudgetClosedError(this.key, `budget "${this.key}" is closed: cannot acquire a permit`));
    return this.#queue.enqueue(String(++this.#seq), options, this.#acquireTimeoutMs, () => {
      this.#serve();
    });
  }

  stats(): BudgetStats {
    return budgetStats(this, this.#held.size, this.#queue, this.#counters, this.#closed, { held: this.#held.size, waiting: this.#queue.length, ageMs: 0 });
  }

  usage(): Promise<BudgetUsage> {
    return Promise.resolve({ key: this.key, limit: this.limit, held: this.#held.size, waiting: this.#queue.length });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#queue.failAll(new BudgetClosedError(this.key, `budget "${this.key}" was closed while waiting for a permit`));
    for (const permit of [...this.#held]) {
      this.#held.delete(permit);
      if (permit.lose(`budget "${this.key}" was closed while the permit was held`)) this.#counters.lost++;
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  toString(): string {
    return `InProcessBudget "${this.key}" (limit=${this.limit} held=${this.#held.size} waiting=${this.#queue.length})`;
  }

  #serve(): void {
    if (this.#closed) return;
    let waiter;
    while (this.#held.size < this.limit && (waiter = this.#queue.first()) !== undefined) {
      const permit = new BudgetPermit(`${this.key}:${waiter.id}`, this.key, (p) => {
        if (!this.#held.delete(p)) return;
        this.#counters.released++;
        this.#serve();
      });
      this.#held.add(permit);
      this.#counters.acquired++;
      this.#queue.grant(waiter, permit);
    }
  }
}

/** An in-process budget of `limit` permits: `createBudget(3)` or `createBudget({ limit: 3, key: 'registry' })`. */
export function createBudget(options: number | InProcessBudgetOptions): InProcessBudget {
  return new InProcessBudget(typeof options === 'number' ? { limit: options } : options);
}
