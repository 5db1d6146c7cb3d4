/**
 * `lifeguard/mysql2/promise`: the promise form of the mysql2 drop-in, like `mysql2/promise`'s `createPool`.
 *
 * ```ts
 * import { createPool } from 'lifeguard/mysql2/promise';
 * const pool = createPool({ host: '127.0.0.1', user: 'app', database: 'app', connectionLimit: 10 });
 * const [rows] = await pool.query('SELECT 1');
 * ```
 */
import type { PoolConnection } from 'mysql2';
import type { Pool as PromisePool } from 'mysql2/promise';
import type { Pool as LifeguardPool } from '../pool/pool.js';
import { createPool as createCallbackPool, type Mysql2DropInOptions } from './mysql2-pool.js';

export { AdapterErrorCodes, ConnectTimeoutError, ConnectionLostError, DriverMissingError, type AdapterErrorCode } from './errors.js';
export type { Mysql2DropInLeak, Mysql2DropInLifeguardOptions, Mysql2DropInOptions, Mysql2DropInPool } from './mysql2-pool.js';

/** mysql2's promise pool on the drop-in; `lifeguard` is the Lifeguard pool underneath. */
export type Mysql2DropInPromisePool = PromisePool & { readonly lifeguard: LifeguardPool<PoolConnection> };

/** A drop-in for `mysql2/promise`'s `createPool(options)`: mysql2's `PromisePool` over the drop-in pool. */
export function createPool(options: Mysql2DropInOptions | string): Mysql2DropInPromisePool {
  const core = createCallbackPool(options);
  const pool = core.promise();
  Object.defineProperty(pool, 'lifeguard', { value: core.lifeguard, enumerable: false });
  return pool as Mysql2DropInPromisePool;
}
