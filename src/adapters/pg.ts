/**
 * `lifeguard/pg`: pooled node-postgres clients. `pg` is an optional peer dependency, loaded when this
 * module is imported (never by `lifeguard` itself).
 *
 * ```ts
 * import { createPgPool } from 'lifeguard/pg';
 * const pool = createPgPool({ connection: { host: '127.0.0.1', database: 'app' }, max: 10 });
 * const rows = await pool.use((client) => client.query('SELECT now()'));
 * ```
 * or, as a drop-in for `pg.Pool`: `import { Pool } from 'lifeguard/pg'; const pool = new Pool({ max: 10 });`
 * or for the whole module: `import pg from 'lifeguard/pg'; new pg.Pool(...); new pg.Client(...)`.
 */
import { Socket } from 'node:net';
import type { ClientConfig } from 'pg';
import type { Pool as LifeguardPool } from '../pool/pool.js';
import { PgPool, type PgDropInPool } from './pg-pool.js';

export { lendToKnex, type KnexLike } from './pg-pool.js';
import type { CreateContext, Factory, PoolOptions } from '../pool/options.js';
import {
  ConnectionWatch, adapterPool, choiceOption, closeConnection, connectTimeoutOption, connectWithin, driverOptions, drained,
  factoryOptions, loadDriver, untilAborted, withDropIn, type ConnectOptions,
} from './shared.js';

export { AdapterErrorCodes, ConnectTimeoutError, ConnectionLostError, DriverMissingError, type AdapterErrorCode } from './errors.js';
export type { ConnectOptions } from './shared.js';
export type { PgDropInConfig, PgDropInLeak, PgDropInLifeguardOptions, PgDropInPool, PgDropInPoolConstructor } from './pg-pool.js';

/**
 * A drop-in for node-postgres's `pg.Pool` (`import { Pool } from 'lifeguard/pg'`): same options, methods,
 * getters and events, an `instanceof pg.Pool`, with a Lifeguard pool underneath. See docs/adapters.md.
 */
export const Pool = PgPool;
export type Pool = PgDropInPool;

const pg = (await loadDriver(() => import('pg'), 'pg', 'lifeguard/pg')).default;

// pg's other names, so that `import { Pool, Client, types } from 'pg'` changes only its module name. pg
// itself is left alone (its Pool stays pg-pool); lifeguard/register is what replaces pg.Pool in place.
export const Client: typeof import('pg').Client = pg.Client;
export type Client = import('pg').Client;
export const Query: typeof import('pg').Query = pg.Query;
export const Connection: typeof import('pg').Connection = pg.Connection;
export const DatabaseError: typeof import('pg').DatabaseError = pg.DatabaseError;
export const TypeOverrides: typeof import('pg').TypeOverrides = pg.TypeOverrides;
export const types: typeof import('pg').types = pg.types;
export const defaults: typeof import('pg').defaults = pg.defaults;
export const escapeIdentifier: typeof import('pg').escapeIdentifier = pg.escapeIdentifier;
export const escapeLiteral: typeof import('pg').escapeLiteral = pg.escapeLiteral;

/** The pg module with `Pool` replaced: what `import pg from 'pg'` gave, for `import pg from 'lifeguard/pg'`. */
const dropIn = withDropIn(pg, 'Pool', PgPool);
export default dropIn;

/**
 * What is cleaned when a client comes back to the pool:
 * - `'rollback'`: an open or failed transaction is rolled back (`ROLLBACK`, sent only when the protocol's
 *   transaction status says one is open, once any query still running has finished). Session settings survive.
 * - `'discard'`: that, then `DISCARD ALL` on every return: session settings, temporary tables, prepared
 *   statements, advisory locks, `LISTEN`s are dropped; the client forgets its named prepared statements too.
 *   One round trip per release.
 */
export type PgReset = 'rollback' | 'discard';

/** Options of {@link pgFactory}. */
export interface PgFactoryOptions extends ConnectOptions {
  /**
   * node-postgres client options (`host`, `port`, `user`, `database`, `password`, `ssl`,
   * `connectionString`, `application_name`, `statement_timeout`, ...). `connectionTimeoutMillis` is
   * rejected: use `connectTimeoutMs`. @default `{}` (node-postgres then reads the `PG*` environment variables)
   */
  readonly connection?: ClientConfig;
  /** How a returned client is cleaned. @default 'rollback' */
  readonly reset?: PgReset;
}

/** Options of {@link createPgPool}: {@link PgFactoryOptions} and every pool option except `factory`. */
export type PgPoolOptions = PgFactoryOptions & Omit<PoolOptions<Client>, 'factory'>;

const ADAPTER_KEYS = ['connection', 'connectTimeoutMs', 'reset'] as const;
const MANAGED = { connectionTimeoutMillis: 'use connectTimeoutMs' };

// The parts of pg's Client and Connection the adapter reads that @types/pg does not declare.
interface ClientInternals {
  processID?: number | null;
  readyForQuery?: boolean;
}
interface ConnectionInternals {
  parsedStatements?: Record<string, unknown>;
  submittedNamedStatements?: Record<string, unknown>;
}

function socketOf(client: Client): Socket | null {
  const stream = client.connection.stream;
  return stream instanceof Socket ? stream : null;
}

function describeClient(client: Client): string {
  const pid = (client as unknown as ClientInternals).processID;
  return `pg connection to ${client.host}:${client.port}${typeof pid === 'number' ? ` (backend pid ${pid})` : ''}`;
}

/**
 * A pool factory for node-postgres clients, for composing your own `new Pool({ factory: pgFactory(...) })`.
 * - create: connects under `connectTimeoutMs` and the create's abort signal (the half-open socket is
 *   destroyed on either), and watches the client: an `error`, an `end`, or the server closing the socket
 *   evicts it at once, idle or lent (`LG_CONNECTION_LOST`).
 * - validate: `SELECT 1`, abandoned when the pool's `validateTimeoutMs` passes.
 * - reset: see {@link PgReset}.
 * - destroy: a polite `Terminate`, then the socket is destroyed regardless.
 * - socket: the client's TCP socket, for the doctor.
 */
export function pgFactory(options: PgFactoryOptions = {}): Factory<Client> {
  const source = factoryOptions(options, ADAPTER_KEYS, 'pgFactory');
  return makeFactory(source);
}

function makeFactory(source: Record<string, unknown>): Factory<Client> {
  const connection = driverOptions(source, MANAGED, 'lifeguard/pg') as ClientConfig;
  const connectTimeoutMs = connectTimeoutOption(source);
  const resetMode = choiceOption(source, 'reset', ['rollback', 'discard'] as const, 'rollback');
  const watches = new WeakMap<Client, ConnectionWatch>();

  const kill = (client: Client): void => {
    client.connection.stream.destroy();
  };

  return {
    async create(context: CreateContext): Promise<Client> {
      const client = new pg.Client({ ...connection });
      const watch = new ConnectionWatch(() => describeClient(client), context.invalidate);
      watches.set(client, watch);
      watch.watch(client, client.connection.stream);
      await connectWithin(describeClient(client), context, connectTimeoutMs, () => client.connect(), () => {
        watch.closing();
        kill(client);
      });
      return client;
    },

    async destroy(client: Client): Promise<void> {
      watches.get(client)?.closing();
      await closeConnection(() => client.end(), () => { kill(client); });
    },

    async validate(client: Client, context): Promise<boolean> {
      const lost = watches.get(client)?.lost;
      if (lost != null) throw lost;
      const result = await untilAborted(client.query<{ ok: number }>('SELECT 1 AS ok'), context.signal);
      return result.rows[0]?.ok === 1;
    },

    async reset(client: Client): Promise<void> {
      const lost = watches.get(client)?.lost;
      if (lost != null) throw lost;
      // Released with queries still running (not awaited): the transaction status is only known once
      // they are done. The pool bounds this wait (validateTimeoutMs) and destroys the client past it.
      if ((client as unknown as ClientInternals).readyForQuery !== true) await drained(client);
      const gone = watches.get(client)?.lost;
      if (gone != null) throw gone;
      // 'I' (idle, no transaction) is the only clean state: 'T' (open) and 'E' (failed) are rolled back.
      if (client.getTransactionStatus() !== 'I') await client.query('ROLLBACK');
      if (resetMode === 'discard') {
        await client.query('DISCARD ALL');
        // The server dropped every prepared statement: make the client prepare its named queries anew.
        const internals = client.connection as unknown as ConnectionInternals;
        internals.parsedStatements = {};
        internals.submittedNamedStatements = {};
      }
      const status = client.getTransactionStatus();
      if (status !== 'I') throw new Error(`${describeClient(client)}: transaction status is still ${String(status)} after ROLLBACK`);
    },

    socket: socketOf,
  };
}

/**
 * A Lifeguard pool of node-postgres clients: {@link pgFactory}'s options plus every pool option.
 * Unknown keys are rejected, naming the known ones.
 */
export function createPgPool(options: PgPoolOptions = {}): LifeguardPool<Client> {
  return adapterPool(options, ADAPTER_KEYS, 'createPgPool', makeFactory);
}
