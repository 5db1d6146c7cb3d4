/** `createPool` of `lifeguard/mysql2`: a drop-in for mysql2's `createPool`, with a Lifeguard pool underneath. */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { Pool as MysqlPool, PoolConnection, PoolOptions as MysqlPoolOptions } from 'mysql2';
import { CreateFailedError, InvalidOptionError, PoolClosedError } from '../pool/errors.js';
import { Pool as LifeguardPool } from '../pool/pool.js';
import type { Lease } from '../pool/lease.js';
import type { LeakReport } from '../pool/events.js';
import { describe, type CreateContext, type Factory, type PoolOptions } from '../pool/options.js';
import { durationOption } from '../internal/options.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import { appFrame, callerSite } from './app-site.js';
import { ConnectionWatch, closeConnection, connectWithin, loadDriver, untilAborted } from './shared.js';

// Loaded with require, not import: see pg-pool.ts (lifeguard/register replaces createPool before the
// application's named imports are taken).
const mysql = await loadDriver(() => Promise.resolve(createRequire(import.meta.url)('mysql2') as typeof import('mysql2')), 'mysql2', 'lifeguard/mysql2');
// mysql2's own createPool, kept before lifeguard/register replaces it with one that calls this module
// (the option parsing below must reach mysql2's, not loop back here).
// lifeguard/register's CommonJS preload may have replaced createPool already; it keeps mysql2's own under this symbol.
const mysqlCreatePool = ((mysql as unknown as Record<symbol, unknown>)[Symbol.for('lifeguard.mysql2.originalCreatePool')] ?? mysql.createPool) as typeof mysql.createPool;

/**
 * Lifeguard's own settings of a drop-in pool (`createPool({ ..., lifeguard: { ... } })`): every Lifeguard pool
 * option except those mysql2's options set (`max` from `connectionLimit`, `idleTimeoutMs` from `idleTimeout`,
 * `maxWaiting` from `queueLimit` and `waitForConnections`).
 */
export type Mysql2DropInLifeguardOptions = Omit<PoolOptions<PoolConnection>, 'factory' | 'max' | 'idleTimeoutMs' | 'maxWaiting'>;

/** mysql2's pool options, plus `lifeguard` for Lifeguard's own. */
export interface Mysql2DropInOptions extends MysqlPoolOptions {
  readonly lifeguard?: Mysql2DropInLifeguardOptions;
}

/** A leak report of a drop-in pool: Lifeguard's, plus the first frame of the application itself. */
export interface Mysql2DropInLeak extends LeakReport {
  readonly message: string;
  /** First frame of the acquirer's stack outside Lifeguard and outside node_modules. */
  readonly appSite: string | null;
}

/** The drop-in's type: mysql2's `Pool` plus the Lifeguard parts. */
export type Mysql2DropInPool = MysqlPool & {
  readonly lifeguard: LifeguardPool<PoolConnection>;
  on(event: 'leak', listener: (leak: Mysql2DropInLeak) => void): Mysql2DropInPool;
};

const OWN_KEYS = ['max', 'idleTimeoutMs', 'maxWaiting', 'factory'] as const;

// What mysql2's PoolConnection and its config have that the types do not declare.
interface ConnectionInternals {
  _released?: boolean;
  _fatalError?: unknown;
  _closing?: boolean;
  _realEnd(callback: (err?: Error) => void): void;
  stream?: unknown;
  threadId?: number | null;
  config: { host?: string; port?: number };
}

interface CoreConfig {
  connectionLimit: number;
  maxIdle: number;
  idleTimeout: number;
  queueLimit: number;
  waitForConnections: boolean;
  resetOnRelease: boolean;
  connectionConfig: { connectTimeout?: number; pool?: unknown };
}

type GetConnectionCallback = (err: Error | null, connection?: PoolConnection) => void;

interface Waiting {
  readonly controller: AbortController;
  /** Order of the getConnection() call, to tell which creations were started for it. */
  readonly seq: number;
  /** The creation error this getConnection fails with, as mysql2's would (no retry behind the caller's back). */
  createError: unknown;
  readonly callback: GetConnectionCallback;
  /** Not served in the tick it asked: waiting for a connection, as in mysql2's `_connectionQueue`. */
  queued: boolean;
}

/**
 * A read-only snapshot in the shape of mysql2's internal queues (denque): `length`, `get(i)`, `toArray()`,
 * iteration. Code that watches a mysql2 pool reads `pool._allConnections.length` and the like.
 */
class QueueView<T> {
  readonly #items: readonly T[];
  constructor(items: readonly T[]) { this.#items = items; }
  get length(): number { return this.#items.length; }
  get(index: number): T | undefined { return this.#items[index]; }
  peekAt(index: number): T | undefined { return this.#items[index]; }
  toArray(): T[] { return [...this.#items]; }
  [Symbol.iterator](): Iterator<T> { return this.#items[Symbol.iterator](); }
}

function describeConnection(conn: PoolConnection): string {
  const c = conn as unknown as ConnectionInternals;
  return `mysql2 connection to ${String(c.config.host)}:${String(c.config.port)}${typeof c.threadId === 'number' ? ` (thread ${c.threadId})` : ''}`;
}

let dropInCount = 0;

const MysqlPoolBase = (mysql as unknown as { Pool: unknown }).Pool as new (options: { config: CoreConfig }) => import('node:events').EventEmitter & { config: CoreConfig; _closed: boolean; _createConnectionConfig(): unknown };

/**
 * mysql2's pool (`query`, `execute`, `getConnection`, `releaseConnection`, `end`, `promise()`, `format`,
 * `escape`, events `connection`/`acquire`/`release`/`enqueue`) on a Lifeguard pool: leak detection (`leak`
 * events naming the acquiring line), deadlines, eviction of dead connections, and `lifeguard` (the pool
 * underneath). mysql2's own `query` and `execute` run unchanged on top of `getConnection`.
 */
class Pool extends MysqlPoolBase {
  readonly lifeguard: LifeguardPool<PoolConnection>;
  readonly #leases = new Map<PoolConnection, Lease<PoolConnection>>();
  readonly #invalidate = new WeakMap<PoolConnection, (reason?: unknown) => void>();
  readonly #closing = new WeakSet<PoolConnection>();
  #ending = false;
  readonly #waiting: Waiting[] = [];
  #seq = 0;
  /** mysql2's maxIdle trim, on the process's shared housekeeper (no timer of its own per pool). */
  #trimTask: HousekeepingTask | undefined;
  /** Connected and not yet removed, in creation order: mysql2's `_allConnections`. */
  readonly #alive = new Set<PoolConnection>();

  constructor(config: CoreConfig, lg: Mysql2DropInLifeguardOptions) {
    // mysql2 starts its own idle-reaping timer when maxIdle < connectionLimit: Lifeguard does that job.
    const own = { ...config, maxIdle: config.connectionLimit };
    super({ config: own });
    const limit = config.connectionLimit;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new InvalidOptionError('connectionLimit', `invalid option "connectionLimit" for lifeguard/mysql2 createPool: expected an integer >= 1 (mysql2's 0, "no limit", is refused: a pool without a cap is what Lifeguard prevents), got ${describe(limit)}`);
    }
    const queueLimit = config.queueLimit;
    // The connect deadline's timer: a longer one would fire after 1 ms.
    const connectTimeout = durationOption(config.connectionConfig, 'connectTimeout', 10_000, { min: 0 });
    this.lifeguard = new LifeguardPool<PoolConnection>({
      name: `mysql2-pool-${++dropInCount}`,
      // mysql2 waits as long as it takes for a connection; Lifeguard's acquireTimeoutMs may bound it.
      acquireTimeoutMs: Infinity,
      maxConcurrentCreates: limit,
      createRetryInitialDelayMs: 1,
      createRetryMaxDelayMs: 100,
      ...lg,
      max: limit,
      idleTimeoutMs: config.idleTimeout,
      maxWaiting: !config.waitForConnections ? 0 : queueLimit === 0 ? Infinity : queueLimit,
      factory: this.#factory(connectTimeout, config.resetOnRelease),
    });
    // mysql2's constructor set its own queues, which this pool never fills: views of Lifeguard's instead.
    Object.defineProperties(this, {
      _allConnections: { get: () => new QueueView([...this.#alive]), configurable: true },
      _freeConnections: { get: () => new QueueView([...this.#alive].filter((c) => !this.#leases.has(c))), configurable: true },
      _connectionQueue: { get: () => new QueueView(this.#waiting.filter((w) => w.queued).map((w) => w.callback)), configurable: true },
    });
    // mysql2's maxIdle: every second, the free connections beyond it are closed, least recently used first
    // (mysql2's own timer, with the same period, was kept from starting above). Lifeguard's idleTimeoutMs
    // closes the others after idleTimeout.
    const maxIdle = config.maxIdle;
    if (maxIdle < limit) {
      this.#trimTask = { periodMs: 1000, run: () => { this.#trimIdle(maxIdle); } };
      Housekeeper.for().register(this.#trimTask);
    }
    this.lifeguard.on('leak', (report) => {
      if (this.listenerCount('leak') === 0) return;
      const leak: Mysql2DropInLeak = { ...report, appSite: appFrame(report.stack) ?? report.label ?? null };
      this.emit('leak', leak);
    });
  }

  #factory(connectTimeoutMs: number, resetOnRelease: boolean): Factory<PoolConnection> {
    const watches = new WeakMap<PoolConnection, ConnectionWatch>();
    const create = async (context: CreateContext): Promise<PoolConnection> => {
      const PoolConnectionClass = mysql.PoolConnection as unknown as new (pool: unknown, options: { config: unknown }) => PoolConnection;
      const conn = new PoolConnectionClass(this, { config: this._createConnectionConfig() });
      const watch = new ConnectionWatch(() => describeConnection(conn), context.invalidate);
      watches.set(conn, watch);
      this.#invalidate.set(conn, context.invalidate);
      watch.watch(conn, (conn as unknown as ConnectionInternals).stream as Socket | undefined ?? null);
      await connectWithin(describeConnection(conn), context, connectTimeoutMs, () => new Promise<void>((resolve, reject) => {
        conn.connect((err: Error | null) => { if (err) reject(err); else resolve(); });
      }), () => {
        watch.closing();
        this.#closing.add(conn);
        conn.destroy();
      });
      this.#alive.add(conn);
      this.emit('connection', conn);
      return conn;
    };
    return {
      create: async (context: CreateContext): Promise<PoolConnection> => {
        const startedFor = this.#seq;
        try {
          return await create(context);
        } catch (error) {
          // mysql2 hands a failed connect's error to the caller it was made for; Lifeguard alone would retry
          // until the acquire deadline (by default none here). The oldest caller already waiting when this
          // creation started gets the error; later ones keep waiting.
          const waiting = this.#waiting.find((w) => w.createError === undefined && w.seq <= startedFor);
          if (waiting !== undefined) {
            waiting.createError = error ?? new Error('connection failed');
            waiting.controller.abort(waiting.createError);
          }
          throw error;
        }
      },
      destroy: async (conn: PoolConnection): Promise<void> => {
        watches.get(conn)?.closing();
        this.#closing.add(conn);
        this.#alive.delete(conn);
        // A lease Lifeguard took back (reclaimAfterMs, a lost budget permit) never comes through release().
        this.#leases.delete(conn);
        const internals = conn as unknown as ConnectionInternals;
        await closeConnection(() => new Promise<void>((resolve) => { internals._realEnd(() => { resolve(); }); }), () => { conn.destroy(); });
      },
      validate: async (conn: PoolConnection, context): Promise<boolean> => {
        const lost = watches.get(conn)?.lost;
        if (lost != null) throw lost;
        await untilAborted(new Promise<void>((resolve, reject) => { conn.ping((err) => { if (err) reject(err); else resolve(); }); }), context.signal);
        return true;
      },
      ...(resetOnRelease ? {
        reset: (conn: PoolConnection): Promise<void> => new Promise<void>((resolve, reject) => {
          (conn as unknown as { reset(cb: (err?: Error | null) => void): void }).reset((err) => { if (err) reject(err); else resolve(); });
        }),
      } : {}),
      socket: (conn: PoolConnection): Socket | null => {
        const stream = (conn as unknown as ConnectionInternals).stream;
        return stream instanceof Socket ? stream : null;
      },
    };
  }

  #trimIdle(maxIdle: number): void {
    const free = [...this.#alive].filter((c) => !this.#leases.has(c) && !this.#closing.has(c));
    if (free.length <= maxIdle) return;
    const lastActive = (c: PoolConnection): number => (c as unknown as { lastActiveTime?: number }).lastActiveTime ?? 0;
    free.sort((a, b) => lastActive(a) - lastActive(b));
    for (const conn of free.slice(0, free.length - maxIdle)) {
      this.#invalidate.get(conn)?.(new Error(`${describeConnection(conn)} closed: more than maxIdle (${maxIdle}) connections were free`));
    }
  }

  /** Checks a connection out: `callback(err, connection)`; give it back with `connection.release()`. */
  getConnection(callback: GetConnectionCallback): void {
    if (this.#ending) {
      process.nextTick(() => { callback(new Error('Pool is closed.')); });
      return;
    }
    const stats = this.lifeguard.stats();
    // As in mysql2: queued (and `enqueue`) when no connection is free and no new one may be made.
    const queued = stats.idle === 0 && stats.size >= this.lifeguard.options.max;
    if (queued) this.emit('enqueue');
    const waiting: Waiting = { controller: new AbortController(), seq: ++this.#seq, createError: undefined, callback, queued };
    this.#waiting.push(waiting);
    const done = (): void => {
      const index = this.#waiting.indexOf(waiting);
      if (index >= 0) this.#waiting.splice(index, 1);
    };
    // The acquirer's frames come after mysql2's and an ORM's: room for them in the captured stack.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = Math.max(limit, 40);
    let acquired: Promise<Lease<PoolConnection>>;
    try {
      const label = callerSite.getStore();
      const signal = waiting.controller.signal;
      acquired = this.lifeguard.acquire(label === undefined ? { signal } : { signal, label });
    } finally {
      Error.stackTraceLimit = limit;
    }
    acquired.then((lease) => {
      done();
      const conn = lease.resource;
      this.#leases.set(conn, lease);
      (conn as unknown as ConnectionInternals)._released = false;
      this.emit('acquire', conn);
      callback(null, conn);
    }, (error: unknown) => {
      done();
      if (waiting.createError !== undefined) callback(waiting.createError as Error);
      else if (error instanceof PoolClosedError) callback(Object.assign(new Error('Pool is closed.'), { cause: error }));
      // A create failed for good (a wrong password): mysql2 passes the driver's error to each caller.
      else if (error instanceof CreateFailedError && error.cause !== undefined) callback(error.cause as Error);
      else callback(error as Error);
    });
  }

  /** What `connection.release()` calls. */
  releaseConnection(conn: PoolConnection): void {
    const lease = this.#leases.get(conn);
    if (lease === undefined) return;
    this.#leases.delete(conn);
    const internals = conn as unknown as ConnectionInternals;
    if (!lease.active) return;
    if (internals._fatalError != null || internals._closing === true) {
      lease.destroy(internals._fatalError ?? undefined);
      return;
    }
    this.emit('release', conn);
    lease.release();
  }

  /** What a connection that ended or failed calls (mysql2's `_removeFromPool`). */
  _removeConnection(conn: PoolConnection): void {
    this.#alive.delete(conn);
    if (this.#closing.has(conn)) return;
    const lease = this.#leases.get(conn);
    this.#leases.delete(conn);
    if (lease?.active === true) lease.destroy(new Error(`${describeConnection(conn)} ended or failed while lent`));
    else this.#invalidate.get(conn)?.(new Error(`${describeConnection(conn)} ended or failed while idle`));
  }

  /** Closes the pool: waits for lent connections (Lifeguard's close deadline, 30 s), then ends every connection. */
  end(callback?: (err?: Error | null) => void): void {
    this.#ending = true;
    if (this.#trimTask !== undefined) Housekeeper.for().unregister(this.#trimTask);
    this.lifeguard.close().then(() => {
      this._closed = true;
      callback?.(null);
    }, (error: unknown) => {
      this._closed = true;
      if (callback === undefined) throw error as Error;
      callback(error as Error);
    });
  }
}

/**
 * A drop-in for mysql2's `createPool(options)`: same options (`connectionLimit`, `queueLimit`,
 * `waitForConnections`, `idleTimeout`, `resetOnRelease`, and every connection option), plus `lifeguard`.
 */
export function createPool(options: Mysql2DropInOptions | string): Mysql2DropInPool {
  let lg: Mysql2DropInLifeguardOptions = {};
  let source: MysqlPoolOptions | string = options;
  if (typeof options === 'object') {
    const { lifeguard = {}, ...rest } = options;
    if (typeof lifeguard !== 'object' || Array.isArray(lifeguard)) {
      throw new InvalidOptionError('lifeguard', `invalid option "lifeguard" for lifeguard/mysql2 createPool: expected an object of Lifeguard pool options, got ${describe(lifeguard)}`);
    }
    for (const key of OWN_KEYS) {
      if ((lifeguard as Record<string, unknown>)[key] !== undefined) {
        throw new InvalidOptionError(`lifeguard.${key}`, `invalid option "lifeguard.${key}" for lifeguard/mysql2 createPool: set by mysql2's own option (connectionLimit, idleTimeout, queueLimit, waitForConnections) or by the adapter; got ${describe((lifeguard as Record<string, unknown>)[key])}`);
      }
    }
    lg = lifeguard;
    source = rest;
  }
  // mysql2's own parsing of the options (a URL, defaults, its warnings about unknown keys), from a pool
  // that never connects and is ended at once.
  const probe = mysqlCreatePool(source as MysqlPoolOptions) as unknown as { config: CoreConfig; end(cb: () => void): void };
  const config = probe.config;
  probe.end(() => undefined);
  return new Pool(config, lg) as unknown as Mysql2DropInPool;
}
