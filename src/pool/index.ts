/** The pool folder's public surface: the pool, its leases, options, errors and diagnostics. */
export { Pool, describeLease, type CloseOptions, type CloseReport } from './pool.js';
export { Lease } from './lease.js';
export type { PoolEntry, DestroyReason } from './pool-entry.js';
export type { PoolOptions, ResolvedPoolOptions, Factory, CreateContext, ValidateContext, AcquireOptions, LeakDetectionMode, IdleOrder } from './options.js';
export type { PoolStats } from './stats.js';
export type { PoolEvents, LeaseInfo, LeakReport } from './events.js';
export * from './errors.js';
export { CHANNELS, channels, subscribe, type ChannelName, type ChannelMessages, type PoolInspection, type ResourceInfo } from './diagnostics.js';
export { pools } from './registry.js';
export type { PoolBudgetStats } from './budget-option.js';
export type { LendGuard } from './pool-entry.js';
