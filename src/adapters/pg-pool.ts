/** `Pool` of `lifeguard/pg`: a drop-in for node-postgres's `pg.Pool` with a Lifeguard pool underneath. */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { ClientBase, PoolClient, PoolConfig } from 'pg';
import { InvalidOptionError, AcquireTimeoutError, CreateFailedError } from '../pool/errors.js';
import { Pool as LifeguardPool } from '../pool/pool.js';
import type { Lease } from '../pool/lease.js';
import type { LeakReport } from '../pool/events.js';
import { describe, type CreateContext, type Factory, type PoolOptions } from '../pool/options.js';
import { durationOption, MAX_DURATION_MS } from '../internal/options.js';
import { appFrame, applicationSite, callerSite } from './app-site.js';
import { ConnectionWatch, closeConnection, connectWithin, drained, loadDriver } from './shared.js';

// Loaded with require, not import: no ESM view of pg is made here, so that lifeguard/register can still
// replace pg.Pool before the application's `import { Pool } from 'pg'` takes its snapshot of the exports.
const pg = await loadDriver(() => Promise.resolve(createRequire(import.meta.url)('pg') as typeof import('pg')), 'pg', 'lifeguard/pg');

/**
 * Lifeguard's own settings of a drop-in pool (`new Pool({ ..., lifeguard: { ... } })`): every Lifeguard pool
 * option except those pg-pool's options already set (`max`, `min`, `idleTimeoutMs`, `maxLifetimeMs`).
 */
export type PgDropInLifeguardOptions = Omit<PoolOptions<PoolClient>, 'factory' | 'max' | 'min' | 'idleTimeoutMs' | 'maxLifetimeMs'>;

/** node-postgres's pool options, plus `lifeguard` for Lifeguard's own. */
export interface PgDropInConfig extends PoolConfig {
  /** Lifeguard's settings (leak detection, deadlines, name, budget...). See docs/adapters.md. */
  readonly lifeguard?: PgDropInLifeguardOptions;
  /** Accepted like pg-pool does: an old name of `max`. */
  readonly poolSize?: number;
}

/** A leak report of a drop-in pool: Lifeguard's, plus the first frame of the application itself. */
export interface PgDropInLeak extends LeakReport {
  readonly message: string;
  /** First frame of the acquirer's stack outside Lifeguard and outside node_modules (an ORM's frames skipped). */
  readonly appSite: string | null;
}

const OWN_KEYS = ['max', 'min', 'idleTimeoutMs', 'maxLifetimeMs', 'factory'] as const;
const NOOP = (): void => undefined;
/** How long end() waits for connects under way before closing (Lifeguard's default close grace). */
const END_GRACE_MS = 30_000;

// What node-postgres's Client has that @types/pg does not declare.
interface ClientInternals {
  _queryable?: boolean;
  _ending?: boolean;
  processID?: number | null;
  readyForQuery?: boolean;
  ref?: () => void;
  unref?: () => void;
  release?: (err?: Error | boolean) => void;
  getTransactionStatus?: () => string | null;
}

type Callback = (err: Error | undefined, client?: PoolClient, release?: (err?: Error | boolean) => void) => void;

interface Waiting {
  readonly controller: AbortController;
  /** Order of the connect() call, to tell which creations were started for it. */
  readonly seq: number;
  /** The creation error this connect fails with, as pg-pool's would (no retry behind the caller's back). */
  createError: unknown;
}

function positive(config: Record<string, unknown>, key: string, integer: boolean, max = Infinity): number | undefined {
  const value = config[key];
  // pg-pool reads `options.x || default`: undefined, null and 0 mean "the default" there, and here.
  if (value === undefined || value === null || value === 0) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (integer && value !== Infinity && !Number.isInteger(value))) {
    throw new InvalidOptionError(key, `invalid option "${key}" for lifeguard/pg Pool: expected ${integer ? 'an integer' : 'a number'} >= 0, got ${describe(value)}`);
  }
  // A timer longer than this fires after 1 ms.
  if (value > max) durationOption({ [key]: value }, key, 0);
  return value;
}

function describeClient(client: ClientBase): string {
  const { processID: pid, host, port } = client as unknown as ClientInternals & { host?: string; port?: number };
  return `pg connection to ${String(host)}:${String(port)}${typeof pid === 'number' ? ` (backend pid ${pid})` : ''}`;
}

let dropInCount = 0;


// Subclassing pg.Pool makes `pool instanceof pg.Pool` true (Prisma's adapter-pg checks it); pg-pool's
// constructor only copies options, and every method that would run its machinery is overridden below.
// lifeguard/register's CommonJS preload may have replaced pg.Pool already; it keeps pg's own under this symbol.
const PgPoolBase = ((pg as unknown as Record<symbol, unknown>)[Symbol.for('lifeguard.pg.Pool')] ?? pg.Pool) as unknown as new (options?: PoolConfig) => import('node:events').EventEmitter & { options: Record<string, unknown> };

/**
 * node-postgres's `pg.Pool`, on a Lifeguard pool: same constructor, options, methods, getters and events,
 * plus leak detection (`leak` events naming the acquiring line), acquire and connect deadlines, eviction
 * of dead connections, and `lifeguard` (the underlying pool: `stats()`, `leases()`, `inspect()`).
 */
class Pool extends PgPoolBase {
  /** The Lifeguard pool underneath. */
  readonly lifeguard: LifeguardPool<PoolClient>;
  /** True once `end()` was called. */
  ending = false;
  /** True once `end()` has finished. */
  ended = false;

  readonly #leases = new Map<PoolClient, Lease<PoolClient>>();
  readonly #uses = new WeakMap<PoolClient, number>();
  readonly #waiting: Waiting[] = [];
  #seq = 0;
  readonly #ends = new WeakMap<PoolClient, Promise<unknown>>();
  readonly #checkouts = new Set<Promise<unknown>>();
  /** Creations under way: counted at once, as pg-pool counts a connecting client (Lifeguard counts them a tick later). */
  #connecting = 0;
  readonly #acquireTimeoutMs: number;
  readonly #maxUses: number;
  readonly #maxLifetimeMs: number;
  readonly #allowExitOnIdle: boolean;
  readonly #created = new Map<PoolClient, number>();

  constructor(options?: PgDropInConfig, Client?: new (config?: unknown) => ClientBase) {
    if (options !== undefined && ((typeof options as string) !== 'object' || (options as unknown) === null || Array.isArray(options))) {
      throw new InvalidOptionError('options', `invalid options for lifeguard/pg Pool: expected an object, got ${describe(options)}`);
    }
    const { lifeguard: lg = {}, ...config } = (options ?? {}) as PgDropInConfig & Record<string, unknown>;
    super(config);
    if (typeof lg !== 'object' || Array.isArray(lg)) {
      throw new InvalidOptionError('lifeguard', `invalid option "lifeguard" for lifeguard/pg Pool: expected an object of Lifeguard pool options, got ${describe(lg)}`);
    }
    for (const key of OWN_KEYS) {
      if ((lg as Record<string, unknown>)[key] !== undefined) {
        throw new InvalidOptionError(`lifeguard.${key}`, `invalid option "lifeguard.${key}" for lifeguard/pg Pool: set by pg-pool's own option (max, min, idleTimeoutMillis, maxLifetimeSeconds) or by the adapter; got ${describe((lg as Record<string, unknown>)[key])}`);
      }
    }
    const source = config as Record<string, unknown>;
    const max = positive(source, 'max', true) ?? positive(source, 'poolSize', true) ?? 10;
    const min = positive(source, 'min', true) ?? 0;
    const idle = source['idleTimeoutMillis'];
    // pg-pool: undefined means 10 s, 0 and null mean never.
    const idleTimeoutMs = idle === undefined ? 10_000 : (positive(source, 'idleTimeoutMillis', false) ?? 0);
    const connectionTimeoutMillis = positive(source, 'connectionTimeoutMillis', false, MAX_DURATION_MS);
    this.#maxUses = positive(source, 'maxUses', true) ?? Infinity;
    this.#maxLifetimeMs = (positive(source, 'maxLifetimeSeconds', false) ?? 0) * 1000;
    this.#allowExitOnIdle = source['allowExitOnIdle'] === true;
    for (const key of ['onConnect', 'verify', 'Client', 'log'] as const) {
      if (source[key] !== undefined && typeof source[key] !== 'function') {
        throw new InvalidOptionError(key, `invalid option "${key}" for lifeguard/pg Pool: expected a function, got ${describe(source[key])}`);
      }
    }
    const ClientClass = (source['Client'] ?? Client ?? pg.Client) as new (config?: unknown) => ClientBase;
    // pg-pool waits forever unless connectionTimeoutMillis is set; Lifeguard's acquireTimeoutMs may bound it.
    this.#acquireTimeoutMs = connectionTimeoutMillis ?? lg.acquireTimeoutMs ?? Infinity;
    this.lifeguard = new LifeguardPool<PoolClient>({
      name: `pg-pool-${++dropInCount}`,
      // pg-pool's behaviour unless told otherwise: every missing client connects at once, lifetimes exact.
      maxConcurrentCreates: max,
      maxLifetimeJitterMs: 0,
      // A failed connect is the caller's error at once (see create below), so the backoff between
      // attempts only guards against a storm: short, where Lifeguard's default starts at 100 ms.
      createRetryInitialDelayMs: 1,
      createRetryMaxDelayMs: 100,
      ...lg,
      max,
      min: Math.min(min, max),
      idleTimeoutMs,
      maxLifetimeMs: this.#maxLifetimeMs,
      acquireTimeoutMs: this.#acquireTimeoutMs,
      factory: this.#factory(ClientClass, config, connectionTimeoutMillis ?? Infinity),
    });
    this.lifeguard.on('leak', (report) => {
      if (this.listenerCount('leak') === 0) return;
      const leak: PgDropInLeak = { ...report, appSite: appFrame(report.stack) ?? report.label ?? null };
      this.emit('leak', leak);
    });
  }

  #factory(ClientClass: new (config?: unknown) => ClientBase, config: Record<string, unknown>, connectTimeoutMs: number): Factory<PoolClient> {
    const watches = new WeakMap<PoolClient, ConnectionWatch>();
    const kill = (client: PoolClient): void => {
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
      stream?.destroy();
    };
    const createClient = async (context: CreateContext): Promise<PoolClient> => {
        const client = new ClientClass(config) as unknown as PoolClient;
        const watch = new ConnectionWatch(() => describeClient(client), context.invalidate);
        watches.set(client, watch);
        // Permanent listeners: a broken connection is evicted whether idle or lent, and never crashes the
        // process; an idle one's error is also the pool's `error` event, as in pg-pool.
        client.on('error', (error: Error) => {
          if (!this.#leases.has(client) && this.#created.has(client)) {
            (error as Error & { client?: unknown }).client = client;
            this.emit('error', error, client);
          }
        });
        watch.watch(client, (client as unknown as { connection?: { stream?: import('./shared.js').Emitter } }).connection?.stream ?? null);
        // The callback form, as pg-pool calls it: a custom Client's connect() need not return a promise.
        const connect = (): Promise<void> => new Promise<void>((resolve, reject) => {
          (client.connect as unknown as (cb: (err?: Error) => void) => void)((err) => { if (err) reject(err); else resolve(); });
        });
        await connectWithin(describeClient(client), context, connectTimeoutMs, connect, () => {
          watch.closing();
          kill(client);
        }).catch((error: unknown) => {
          if (error instanceof Error && (error as { code?: string }).code === 'LG_CONNECT_TIMEOUT') {
            throw new Error('Connection terminated due to connection timeout', { cause: error });
          }
          throw error;
        });
        try {
          const onConnect = this.options['onConnect'] as ((c: PoolClient) => unknown) | undefined;
          if (onConnect !== undefined) await onConnect(client);
          const verify = this.options['verify'] as ((c: PoolClient, done: (err?: Error) => void) => void) | undefined;
          if (verify !== undefined) {
            await new Promise<void>((resolve, reject) => {
              verify(client, (err) => { if (err) reject(err); else resolve(); });
            });
          }
        } catch (error) {
          watch.closing();
          await closeConnection(() => client.end(), () => { kill(client); });
          throw error;
        }
        this.#created.set(client, Date.now());
        this.emit('connect', client);
        return client;
    };
    return {
      create: async (context: CreateContext): Promise<PoolClient> => {
        const startedFor = this.#seq;
        this.#connecting++;
        this.log('connecting new client');
        try {
          const client = await createClient(context);
          this.#connecting--;
          this.log('new client connected');
          return client;
        } catch (error) {
          this.#connecting--;
          this.log('client failed to connect', error);
          // pg-pool hands a failed connect's error to the caller it was started for; Lifeguard alone would
          // retry until the acquire deadline (by default none here). The oldest caller already waiting
          // when this creation started gets the error, as in pg-pool; later ones keep waiting.
          const waiting = this.#waiting.find((w) => w.createError === undefined && w.seq <= startedFor);
          if (waiting !== undefined) {
            waiting.createError = error ?? new Error('connection failed');
            waiting.controller.abort(waiting.createError);
          }
          throw error;
        }
      },
      destroy: async (client: PoolClient): Promise<void> => {
        watches.get(client)?.closing();
        this.#created.delete(client);
        // A lease Lifeguard took back (reclaimAfterMs, a lost budget permit) never comes through release().
        this.#leases.delete(client);
        await closeConnection(() => this.#ends.get(client) ?? client.end(), () => { kill(client); });
        this.emit('remove', client);
      },
      socket: (client: PoolClient): Socket | null => {
        const stream = (client as unknown as { connection?: { stream?: unknown } }).connection?.stream;
        return stream instanceof Socket ? stream : null;
      },
    };
  }

  /** Checks a client out: a promise, or `callback(err, client, release)`. */
  connect(): Promise<PoolClient>;
  connect(callback: Callback): void;
  connect(callback?: Callback): Promise<PoolClient> | undefined {
    if (this.ending) {
      const err = new Error('Cannot use a pool after calling end on the pool');
      if (callback !== undefined) {
        callback(err, undefined, NOOP);
        return undefined;
      }
      return Promise.reject(err);
    }
    const result = this.#checkout();
    if (callback === undefined) return result;
    result.then((client) => { callback(undefined, client, (err) => { client.release(err); }); }, (error: unknown) => { callback(error as Error, undefined, NOOP); });
    return undefined;
  }

  #checkout(): Promise<PoolClient> {
    const waiting: Waiting = { controller: new AbortController(), seq: ++this.#seq, createError: undefined };
    this.#waiting.push(waiting);
    // The acquirer's frames come after pg-pool's and an ORM's: room for them in the captured stack.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = Math.max(limit, 40);
    let acquired: Promise<Lease<PoolClient>>;
    try {
      const label = callerSite.getStore();
      acquired = this.lifeguard.acquire(label === undefined ? { signal: waiting.controller.signal } : { signal: waiting.controller.signal, label });
    } finally {
      Error.stackTraceLimit = limit;
    }
    const done = (): void => {
      const index = this.#waiting.indexOf(waiting);
      if (index >= 0) this.#waiting.splice(index, 1);
    };
    const settled = acquired.then(() => undefined, () => undefined);
    this.#checkouts.add(settled);
    void settled.then(() => this.#checkouts.delete(settled));
    return acquired.then((lease) => {
      done();
      return this.#lend(lease);
    }, (error: unknown) => {
      done();
      if (waiting.createError !== undefined) throw waiting.createError as Error;
      // A create failed for good (a wrong password): pg-pool fails each connect() with the driver's error.
      if (error instanceof CreateFailedError && error.cause !== undefined) throw error.cause as Error;
      if (error instanceof AcquireTimeoutError) {
        // pg-pool's wording first: code that matches on it keeps working; Lifeguard's diagnosis follows.
        error.message = `timeout exceeded when trying to connect: ${error.message}`;
      }
      throw error;
    });
  }

  #lend(lease: Lease<PoolClient>): PoolClient {
    const client = lease.resource;
    this.#leases.set(client, lease);
    const internals = client as unknown as ClientInternals;
    internals.ref?.();
    let released = false;
    const release = (err?: Error | boolean): void => {
      if (released) throw new Error('Release called on client which has already been released to the pool.');
      released = true;
      this.#release(client, lease, err);
    };
    internals.release = release;
    this.emit('acquire', client);
    return client;
  }

  #release(client: PoolClient, lease: Lease<PoolClient>, err: Error | boolean | undefined): void {
    this.#leases.delete(client);
    const uses = (this.#uses.get(client) ?? 0) + 1;
    this.#uses.set(client, uses);
    this.emit('release', err, client);
    const internals = client as unknown as ClientInternals;
    if (!lease.active) return; // revoked by Lifeguard (reclaimAfterMs, a lost budget permit): already destroyed
    // Any truthy err removes the client, as in pg-pool (callbacks pass null for "no error").
    if (Boolean(err) || internals._queryable === false || internals._ending === true || uses >= this.#maxUses) {
      if (uses >= this.#maxUses) this.log('remove expended client');
      // Ended now, as pg-pool does (callers check client._ending right after release); the factory's
      // destroy awaits this end instead of starting another.
      this.#ends.set(client, client.end().catch(() => undefined));
      lease.destroy(err instanceof Error ? err : undefined);
      return;
    }
    if (typeof internals.getTransactionStatus === 'function' && (internals.readyForQuery === false || internals.getTransactionStatus() !== 'I')) {
      // Released inside a transaction (a forgotten COMMIT, a failed one) or with a query still running:
      // pg-pool would lend it so to the next caller. It is rolled back first (after the query is done),
      // and destroyed if that fails; only this rare case makes a release asynchronous.
      void this.#rollBack(client).then(() => { this.#giveBack(client, lease); }, (error: unknown) => { lease.destroy(error); });
      return;
    }
    this.#giveBack(client, lease);
  }

  #giveBack(client: PoolClient, lease: Lease<PoolClient>): void {
    if (!lease.active) return;
    if (this.#allowExitOnIdle) (client as unknown as ClientInternals).unref?.();
    lease.release();
  }

  async #rollBack(client: PoolClient): Promise<void> {
    if ((client as unknown as ClientInternals).readyForQuery === false) await drained(client);
    if (client.getTransactionStatus() !== 'I') await client.query('ROLLBACK');
    const status = client.getTransactionStatus();
    if (status !== 'I') throw new Error(`${describeClient(client)}: transaction status is still ${String(status)} after ROLLBACK`);
  }

  /** Runs one query on a pooled client: a promise, or `callback(err, result)`. */
  query(text: unknown, values?: unknown, callback?: unknown): unknown {
    if (typeof text === 'function') {
      const cb = text as (err: Error) => void;
      const err = new Error('Passing a function as the first parameter to pool.query is not supported');
      setImmediate(() => { cb(err); });
      return undefined;
    }
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
    }
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const result = callback === undefined ? new Promise((res, rej) => { resolve = res; reject = rej; }) : undefined;
    const cb = (callback ?? ((err: Error | undefined, res?: unknown) => { if (err) reject(err); else resolve(res); })) as (err: Error | undefined, res?: unknown) => void;
    this.connect((err, client) => {
      if (err !== undefined || client === undefined) {
        cb(err ?? new Error('no client'));
        return;
      }
      let clientReleased = false;
      const onError = (error: Error): void => {
        if (clientReleased) return;
        clientReleased = true;
        client.release(error);
        cb(error);
      };
      client.once('error', onError);
      try {
        (client.query as unknown as (t: unknown, v: unknown, c: (e: Error | undefined, r: unknown) => void) => void)(text, values, (error, res) => {
          client.removeListener('error', onError);
          if (clientReleased) return;
          clientReleased = true;
          client.release(error);
          if (error) cb(error);
          else cb(undefined, res);
        });
      } catch (error) {
        client.removeListener('error', onError);
        clientReleased = true;
        client.release(error as Error);
        cb(error as Error);
      }
    });
    return result;
  }

  /** Closes the pool: waits for lent clients (Lifeguard's close deadline, 30 s) and ends every client. */
  end(callback?: (err?: Error) => void): Promise<void> | undefined {
    if (this.ending) {
      const err = new Error('Called end on pool more than once');
      if (callback !== undefined) {
        callback(err);
        return undefined;
      }
      return Promise.reject(err);
    }
    this.ending = true;
    this.log('ending');
    const closed = this.#settleCheckouts().then(() => this.lifeguard.close()).then(() => {
      this.ended = true;
    });
    if (callback === undefined) return closed;
    closed.then(() => { callback(); }, (error: unknown) => { callback(error as Error); });
    return undefined;
  }

  /** pg-pool's internal list of clients, read-only (code that reaches into it keeps working). */
  get _clients(): PoolClient[] {
    return [...this.#created.keys()];
  }

  set _clients(_value: unknown) {
    // pg-pool's constructor assigns it; the list is Lifeguard's.
  }

  /** pg-pool's `log` option, called at the same moments with the same words. */
  log(...messages: unknown[]): void {
    const log = this.options['log'];
    if (typeof log === 'function') (log as (...m: unknown[]) => void)(...messages);
  }

  /**
   * pg-pool's end() lets the connects already asked for finish (and their queries run); Lifeguard's close()
   * would reject them. So the pool waits for them first, bounded by the same 30 s close grace.
   */
  async #settleCheckouts(): Promise<void> {
    if (this.#checkouts.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#checkouts]),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, END_GRACE_MS); }),
    ]);
    clearTimeout(timer);
  }

  /** Clients alive or connecting. */
  get totalCount(): number {
    return this.lifeguard.stats().size + this.#connecting;
  }

  /** Clients idle in the pool. */
  get idleCount(): number {
    return this.lifeguard.stats().idle;
  }

  /** Callers waiting for a client. */
  get waitingCount(): number {
    return this.lifeguard.stats().pending;
  }

  /** Clients past `maxLifetimeSeconds`, to be removed when released. */
  get expiredCount(): number {
    if (this.#maxLifetimeMs === 0) return 0;
    const now = Date.now();
    let count = 0;
    for (const createdAt of this.#created.values()) if (now - createdAt >= this.#maxLifetimeMs) count++;
    return count;
  }
}

/** The drop-in's type: pg's `Pool` plus the Lifeguard parts. */
export type PgDropInPool = import('pg').Pool & {
  readonly lifeguard: LifeguardPool<PoolClient>;
  on(event: 'leak', listener: (leak: PgDropInLeak) => void): PgDropInPool;
};

/** The constructor of {@link PgDropInPool}. */
export interface PgDropInPoolConstructor {
  new (config?: PgDropInConfig, Client?: new (config?: unknown) => ClientBase): PgDropInPool;
  readonly prototype: PgDropInPool;
}

export const PgPool = Pool as unknown as PgDropInPoolConstructor;

/** The part of a knex instance {@link lendToKnex} replaces. */
export interface KnexLike {
  readonly client: object;
}

/**
 * Makes a knex instance (client `pg`) take its connections from a drop-in pool instead of its own tarn
 * pool: every query and transaction of knex then runs under Lifeguard's leak detection and deadlines.
 * knex's `pool` settings no longer matter; close the drop-in pool with `end()` after `knex.destroy()`.
 */
export function lendToKnex<K extends KnexLike>(knex: K, pool: PgDropInPool): K {
  const client = knex.client as Record<string, unknown> & { acquireConnection: () => Promise<unknown>; releaseConnection: (connection: unknown) => Promise<void> };
  client.acquireConnection = () => pool.connect();
  client.releaseConnection = (connection) => {
    (connection as PoolClient).release();
    return Promise.resolve();
  };
  // knex acquires from promise callbacks, where the application's frames are gone from the stack: the
  // application's line is taken where it calls knex (a transaction, a query's runner) and carried along.
  if (pool.lifeguard.options.leakDetection !== 'off') {
    for (const name of ['transaction', 'runner']) {
      const original = client[name];
      if (typeof original !== 'function') continue;
      client[name] = function (this: unknown, ...args: unknown[]): unknown {
        const site = applicationSite();
        return site === null ? Reflect.apply(original, this, args) as unknown : callerSite.run(site, () => Reflect.apply(original, this, args) as unknown);
      };
    }
  }
  return knex;
}

