/**
 * `lifeguard/budget`: cap how many connections a whole fleet of processes holds to one remote.
 *
 * ```ts
 * import { Pool } from 'lifeguard';
 * import { RedisBudget, createBudget } from 'lifeguard/budget';
 *
 * const budget = new RedisBudget({ redis: 'redis://127.0.0.1:6379', key: 'registry', limit: 40 });
 * const pool = new Pool({ factory, max: 8, budget });
 * ```
 */
export type { Budget, BudgetAcquireOptions, BudgetFleetView, BudgetStats, BudgetUsage, Permit } from './budget.js';
export { InProcessBudget, createBudget, type InProcessBudgetOptions } from './in-process.js';
export { RedisBudget, type BudgetFallbackEvent, type RedisBudgetOptions, type RedisBudgetStats } from './redis.js';
// Lives with the pool (the option is the pool's); kept here too, where users of the budget look for it.
export { budgetedFactory } from '../pool/budget-option.js';
export {
  BudgetErrorCodes,
  BudgetError,
  BudgetTimeoutError,
  BudgetUnavailableError,
  BudgetAbortedError,
  BudgetClosedError,
  PermitLostError,
  type BudgetErrorCode,
  type BudgetTimeoutState,
} from './errors.js';
