/** `pool.stats()`: its type, and the snapshot built from the pool's core. */
import { budgetStatsOf, type PermitWaits, type PoolBudgetStats } from './budget-option.js';
import type { PoolCore } from './core.js';
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

/** The sizes at this instant; counts a resource out for a keep-alive probe as idle, so they always add up. */
export function poolStats<T>(core: PoolCore<T>, creating: number, destroying: number, closed: boolean, permitWaits: PermitWaits): PoolStats {
  const c = core.counters;
  const o = core.o;
  const size = core.all.size;
  const idle = core.idle.length + core.probing;
  return {
    name: o.name,
    size,
    idle,
    inUse: size - idle,
    pending: core.queue.pending,
    creating,
    destroying,
    max: o.max,
    min: o.min,
    closed,
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
    ...(o.budget === undefined ? {} : { budget: budgetStatsOf(o.budget, permitWaits) }),
  };
}
