/** The type of `pool.stats()`. */
import type { PoolBudgetStats } from './budget-option.js';
import type { DestroyReason } from './pool-entry.js';

/** A point-in-time snapshot of a pool: sizes, then counters since the pool was made. */
export interface PoolStats {
  readonly name: string;
  /** Live resources: idle + inUse. */
  readonly size: number;
  readonly idle: number;
  /** Lent, or being validated or reset before they can be lent again. */
  readonly inUse: number;
  /** Acquires waiting. */
  readonly pending: number;
  /** `factory.create` calls in flight. */
  readonly creating: number;
  /** `factory.destroy` calls in flight. */
  readonly destroying: number;
  readonly max: number;
  readonly min: number;
  readonly closed: boolean;
  readonly created: number;
  readonly createErrors: number;
  readonly acquired: number;
  readonly released: number;
  readonly timeouts: number;
  readonly aborted: number;
  readonly rejectedQueueFull: number;
  readonly validationFailures: number;
  /** Leak reports of any kind (held too long, dropped, reclaimed). */
  readonly leaks: number;
  /** Leases garbage-collected while still out. */
  readonly dropped: number;
  /** Leases revoked after `reclaimAfterMs`. */
  readonly revoked: number;
  readonly destroyed: Readonly<Record<DestroyReason, number>>;
  /** With the `budget` option: the budget's key and limit, permits held and waited for here, and this pool's creations waiting for one. */
  readonly budget?: PoolBudgetStats;
}
