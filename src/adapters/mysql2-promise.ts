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
import { loadDriver, withDropIn } from './shared.js';

// Through the drop-in's own load above (mysql2-pool.js), so a missing mysql2 is LG_DRIVER_MISSING.
const mysql = (await loadDriver(() => import('mysql2/promise'), 'mysql2', 'lifeguard/mysql2/promise')).default;

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

// mysql2/promise's other names, so that `import { createPool, createConnection } from 'mysql2/promise'`
// changes only its module name. mysql2 itself is left alone.
export const createConnection: typeof import('mysql2/promise').createConnection = mysql.createConnection;
export const createPoolCluster: typeof import('mysql2/promise').createPoolCluster = mysql.createPoolCluster;
export const escape: typeof import('mysql2/promise').escape = mysql.escape;
export const escapeId: typeof import('mysql2/promise').escapeId = mysql.escapeId;
export const format: typeof import('mysql2/promise').format = mysql.format;
export const raw: typeof import('mysql2/promise').raw = mysql.raw;
export const Types: typeof import('mysql2/promise').Types = mysql.Types;

/** mysql2/promise with `createPool` replaced: for `import mysql from 'lifeguard/mysql2/promise'`. */
const dropIn = withDropIn(mysql, 'createPool', createPool);
export default dropIn;
