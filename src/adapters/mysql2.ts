/**
 * `lifeguard/mysql2`: pooled `mysql2/promise` connections, for MariaDB and MySQL. `mysql2` is an optional
 * peer dependency, loaded when this module is imported (never by `lifeguard` itself).
 *
 * ```ts
 * import { createMysql2Pool } from 'lifeguard/mysql2';
 * const pool = createMysql2Pool({ connection: { host: '127.0.0.1', user: 'app', database: 'app' }, max: 10 });
 * const [rows] = await pool.use((conn) => conn.query('SELECT NOW()'));
 * ```
 */
import { Socket } from 'node:net';
import type { Connection as CoreConnection, ConnectionOptions } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import type { Pool } from '../pool/pool.js';
import type { CreateContext, Factory, PoolOptions } from '../pool/options.js';
import {
  ConnectionWatch, adapterPool, choiceOption, closeConnection, connectTimeoutOption, connectWithin, driverOptions,
  factoryOptions, loadDriver, untilAborted, withDropIn, type ConnectOptions,
} from './shared.js';
import { createPool as createDropInPool } from './mysql2-pool.js';

export { AdapterErrorCodes, ConnectTimeoutError, ConnectionLostError, DriverMissingError, type AdapterErrorCode } from './errors.js';
export type { ConnectOptions } from './shared.js';
/** A drop-in for mysql2's `createPool` (`import { createPool } from 'lifeguard/mysql2'`). See docs/adapters.md. */
export { createPool, type Mysql2DropInLeak, type Mysql2DropInLifeguardOptions, type Mysql2DropInOptions, type Mysql2DropInPool } from './mysql2-pool.js';

const mysql = (await loadDriver(() => import('mysql2'), 'mysql2', 'lifeguard/mysql2')).default;

// mysql2's other names, so that `import { createPool, createConnection, format } from 'mysql2'` changes only
// its module name. mysql2 itself is left alone; lifeguard/register is what replaces its createPool in place.
export const createConnection: typeof import('mysql2').createConnection = mysql.createConnection;
export const createPoolCluster: typeof import('mysql2').createPoolCluster = mysql.createPoolCluster;
export const escape: typeof import('mysql2').escape = mysql.escape;
export const escapeId: typeof import('mysql2').escapeId = mysql.escapeId;
export const format: typeof import('mysql2').format = mysql.format;
export const raw: typeof import('mysql2').raw = mysql.raw;
export const Types: typeof import('mysql2').Types = mysql.Types;

/** mysql2 with `createPool` replaced: what `import mysql from 'mysql2'` gave, for `import mysql from 'lifeguard/mysql2'`. */
const dropIn = withDropIn(mysql, 'createPool', createDropInPool);
export default dropIn;

/**
 * What is cleaned when a connection comes back to the pool:
 * - `'connection'`: `COM_RESET_CONNECTION` (MySQL >= 5.7.3, MariaDB >= 10.2.4): rolls back the
 *   transaction, releases table and named locks, drops temporary tables, resets session and user variables,
 *   and closes prepared statements (mysql2 forgets its statement cache too); keeps the login and database.
 * - `'rollback'`: `ROLLBACK` only; session state survives (for servers without `COM_RESET_CONNECTION`, or
 *   applications that rely on session state across leases).
 * Either is one round trip per release (the protocol does not tell the client whether a transaction is open).
 */
export type Mysql2Reset = 'connection' | 'rollback';

/** Options of {@link mysql2Factory}. */
export interface Mysql2FactoryOptions extends ConnectOptions {
  /**
   * mysql2 connection options (`host`, `port`, `user`, `password`, `database`, `socketPath`, `ssl`, `uri`,
   * `charset`, `timezone`, ...). `connectTimeout` is rejected: use `connectTimeoutMs`. @default `{}`
   */
  readonly connection?: ConnectionOptions;
  /** How a returned connection is cleaned. @default 'connection' */
  readonly reset?: Mysql2Reset;
}

/** Options of {@link createMysql2Pool}: {@link Mysql2FactoryOptions} and every pool option except `factory`. */
export type Mysql2PoolOptions = Mysql2FactoryOptions & Omit<PoolOptions<Connection>, 'factory'>;

const ADAPTER_KEYS = ['connection', 'connectTimeoutMs', 'reset'] as const;
const MANAGED = { connectTimeout: 'use connectTimeoutMs' };

/** The core connection's current socket (a TLS socket once upgraded); the types do not declare it. */
function socketOf(core: CoreConnection): Socket | null {
  const stream = (core as unknown as { stream?: unknown }).stream;
  return stream instanceof Socket ? stream : null;
}

function describeConnection(core: CoreConnection): string {
  const where = core.config.socketPath ?? `${core.config.host ?? 'localhost'}:${core.config.port ?? 3306}`;
  // threadId is null until the handshake; the types do not say so.
  const thread = core.threadId as number | null;
  return `mysql2 connection to ${where}${thread === null ? '' : ` (thread id ${thread})`}`;
}

/**
 * A pool factory for `mysql2/promise` connections, for composing your own
 * `new Pool({ factory: mysql2Factory(...) })`.
 * - create: connects under `connectTimeoutMs` and the create's abort signal (the half-open socket is
 *   destroyed on either), and watches the connection: an `error`, an `end`, or the server closing the socket
 *   evicts it at once, idle or lent (`LG_CONNECTION_LOST`).
 * - validate: `COM_PING`, abandoned when the pool's `validateTimeoutMs` passes.
 * - reset: see {@link Mysql2Reset}.
 * - destroy: a polite `COM_QUIT`, then the socket is destroyed regardless.
 * - socket: the connection's TCP socket, for the doctor.
 */
export function mysql2Factory(options: Mysql2FactoryOptions = {}): Factory<Connection> {
  return makeFactory(factoryOptions(options, ADAPTER_KEYS, 'mysql2Factory'));
}

function makeFactory(source: Record<string, unknown>): Factory<Connection> {
  const connection = driverOptions(source, MANAGED, 'lifeguard/mysql2') as ConnectionOptions;
  const connectTimeoutMs = connectTimeoutOption(source);
  const resetMode = choiceOption(source, 'reset', ['connection', 'rollback'] as const, 'connection');
  // The promise wrapper hides the core connection from the types; keep the link here instead.
  const cores = new WeakMap<Connection, { core: CoreConnection; watch: ConnectionWatch }>();

  const lost = (conn: Connection): void => {
    const gone = cores.get(conn)?.watch.lost;
    if (gone != null) throw gone;
  };

  return {
    async create(context: CreateContext): Promise<Connection> {
      // connectTimeout 0: the adapter's own deadline (which also honours the abort signal) replaces mysql2's.
      const core = mysql.createConnection({ ...connection, connectTimeout: 0 });
      const watch = new ConnectionWatch(() => describeConnection(core), context.invalidate);
      watch.watch(core, socketOf(core));
      const handshake = (): Promise<void> => new Promise<void>((resolve, reject) => {
        const onConnect = (): void => {
          core.off('error', onError);
          resolve();
        };
        const onError = (error: Error): void => {
          core.off('connect', onConnect);
          reject(error);
        };
        core.once('connect', onConnect);
        core.once('error', onError);
      });
      await connectWithin(describeConnection(core), context, connectTimeoutMs, handshake, () => {
        watch.closing();
        core.destroy();
      });
      const conn = core.promise();
      cores.set(conn, { core, watch });
      return conn;
    },

    async destroy(conn: Connection): Promise<void> {
      const link = cores.get(conn);
      link?.watch.closing();
      await closeConnection(() => conn.end(), () => { conn.destroy(); });
    },

    async validate(conn: Connection, context): Promise<boolean> {
      lost(conn);
      await untilAborted(conn.ping(), context.signal);
      return true;
    },

    async reset(conn: Connection): Promise<void> {
      lost(conn);
      // Queued behind any query still running (mysql2 runs commands in order), so it cleans up after it.
      if (resetMode === 'connection') await conn.reset();
      else await conn.query('ROLLBACK');
    },

    socket(conn: Connection): Socket | null {
      const link = cores.get(conn);
      return link === undefined ? null : socketOf(link.core);
    },
  };
}

/**
 * A Lifeguard pool of `mysql2/promise` connections: {@link mysql2Factory}'s options plus every pool option.
 * Unknown keys are rejected, naming the known ones.
 */
export function createMysql2Pool(options: Mysql2PoolOptions = {}): Pool<Connection> {
  return adapterPool(options, ADAPTER_KEYS, 'createMysql2Pool', makeFactory);
}
