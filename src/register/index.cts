/**
 * `node -r lifeguard/register app.js` (CommonJS preload): replaces pg.Pool and mysql2's createPool (callback
 * and promise) at once, with stand-ins bound to Lifeguard's (ESM) drop-ins as soon as those are loaded, a
 * few milliseconds later, and hooks ioredis; the rest of the attach (http, fetch, dashboard, signal) starts
 * then too. A call made on a stand-in before that waits for the drop-in and runs in the caller's line.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as below
import events = require('node:events');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS file: import = require is its import
import nodeModule = require('node:module');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
import url = require('node:url');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
import early = require('./early.cjs');

type Dict = Record<string | symbol, unknown>;
type Fn = (...args: unknown[]) => unknown;
interface Loaded {
  attach: (options: Dict) => Promise<unknown>;
  optionsFromEnv: () => Dict;
  callerSite: { run<R>(site: string, fn: () => R): R };
  siteOf: (stack: string) => string | null;
}
interface DropIn {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  [key: string]: unknown;
}

const requireHere = nodeModule.createRequire(__filename);
const dir = __dirname;

function tryRequire(name: string): Dict | null {
  try {
    return requireHere(name) as Dict;
  } catch {
    return null;
  }
}

// ioredis clients opened before the ESM part has loaded are recorded by the hook and handed over to it.
const ioredis = tryRequire('ioredis');
if (ioredis !== null) early.hookIoredis(ioredis);

const pg = tryRequire('pg');
const originalPgPool = pg?.['Pool'] as (new (...args: unknown[]) => DropIn) | undefined;
// The drop-in must extend pg's own Pool, not the stand-in below: it reads the original from here.
if (pg !== null) Object.defineProperty(pg, Symbol.for('lifeguard.pg.Pool'), { value: originalPgPool, enumerable: false });
const mysql = tryRequire('mysql2');
const mysqlPromise = tryRequire('mysql2/promise');
const originalCreatePool = { callback: mysql?.['createPool'] as Fn | undefined, promise: mysqlPromise?.['createPool'] as Fn | undefined };
// The drop-in parses options with mysql2's own createPool, not the stand-in below: it reads it from here.
if (mysql !== null) Object.defineProperty(mysql, Symbol.for('lifeguard.mysql2.originalCreatePool'), { value: originalCreatePool.callback, enumerable: false });

// The ESM part. Its attach() replaces pg.Pool and createPool with the real drop-ins; the stand-ins below
// cover the pools an application makes before that.
let loaded: Loaded | null = null;
const loading: Promise<Loaded> = (async () => {
  const register = await import(url.pathToFileURL(`${dir}/attach.js`).href) as unknown as Loaded;
  const options = register.optionsFromEnv();
  await register.attach(options);
  loaded = register;
  return register;
})();
loading.catch((error: unknown) => {
  process.stderr.write(JSON.stringify({ lifeguard: 'attach-error', message: error instanceof Error ? error.message : String(error) }) + '\n');
});

/** The caller's stack, formatted only if read. */
function captureStack(): { stack?: string } {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder, captureStack);
  Error.stackTraceLimit = limit;
  return holder;
}

/**
 * Calls `method` on the real pool: now if it exists, else once it does, in the caller's line (taken now,
 * as the deferred call runs from a promise callback where the application's frames are gone). A deferred
 * call returns the promise of its result, or with a callback passes a failure to it and returns undefined.
 */
function forward(real: DropIn | null, ready: Promise<DropIn>, method: string, args: unknown[]): unknown {
  if (real !== null) return (real[method] as Fn).apply(real, args);
  const holder = captureStack();
  const last = args[args.length - 1];
  const result = ready.then((target) => {
    const call = (): unknown => (target[method] as Fn).apply(target, args);
    const site = loaded?.siteOf(holder.stack ?? '') ?? null;
    return site === null || loaded === null ? call() : loaded.callerSite.run(site, call);
  });
  if (typeof last !== 'function') return result;
  result.catch((error: unknown) => { (last as Fn)(error); });
  return undefined;
}

/** Re-emits the real pool's events on its stand-in. */
function mirror(real: DropIn, standIn: { emit(event: string, ...payload: unknown[]): boolean }, names: readonly string[]): void {
  for (const event of names) real.on(event, (...payload: unknown[]) => { standIn.emit(event, ...payload); });
}

if (pg !== null && originalPgPool !== undefined) {
  const EVENTS = ['connect', 'acquire', 'release', 'remove', 'error', 'leak'];
  // A pg.Pool made before the attach finished: a pg.Pool (instanceof holds) whose every call goes to the
  // real drop-in, made from the same arguments once it can be (pg's own Pool when pg is not attached).
  class Pool extends originalPgPool {
    #pool: DropIn | null = null;
    readonly #ready: Promise<DropIn>;

    constructor(...args: unknown[]) {
      super(...args);
      this.#ready = loading.then(() => {
        const Real = ((pg as Record<string | symbol, unknown>)[Symbol.for('lifeguard.pg.AttachedPool')] ?? originalPgPool) as new (...a: unknown[]) => DropIn;
        const real = new Real(...args);
        mirror(real, this as unknown as { emit(e: string, ...p: unknown[]): boolean }, EVENTS);
        this.#pool = real;
        return real;
      });
    }

    connect(...args: unknown[]): unknown { return forward(this.#pool, this.#ready, 'connect', args); }
    query(...args: unknown[]): unknown { return forward(this.#pool, this.#ready, 'query', args); }
    end(...args: unknown[]): unknown { return forward(this.#pool, this.#ready, 'end', args); }
    get lifeguard(): unknown { return this.#pool?.['lifeguard']; }
    get totalCount(): number { return (this.#pool?.['totalCount'] as number | undefined) ?? 0; }
    get idleCount(): number { return (this.#pool?.['idleCount'] as number | undefined) ?? 0; }
    get waitingCount(): number { return (this.#pool?.['waitingCount'] as number | undefined) ?? 0; }
    get expiredCount(): number { return (this.#pool?.['expiredCount'] as number | undefined) ?? 0; }
  }
  pg['Pool'] = Pool;
}

if (mysql !== null && originalCreatePool.callback !== undefined) {
  const EVENTS = ['connection', 'acquire', 'release', 'enqueue', 'error', 'leak'];
  const made = (kind: 'createPool' | 'createPromisePool'): Fn => {
    const attached = mysql[Symbol.for(`lifeguard.mysql2.${kind}`)] as Fn | undefined;
    // mysql2 not attached (LIFEGUARD_ATTACH): its own createPool.
    return attached ?? (kind === 'createPool' ? originalCreatePool.callback : originalCreatePool.promise) ?? (() => { throw new Error('mysql2/promise is not installed'); });
  };

  /**
   * A mysql2 pool made before the attach finished. Its calls go to the real drop-in once it exists; one
   * made before that is deferred, so returns nothing (`query()`'s Query object, for streaming, is only
   * there once the drop-in is). `escape`, `escapeId` and `format` need no pool.
   */
  class StandInPool extends events.EventEmitter {
    #pool: DropIn | null = null;
    readonly ready: Promise<DropIn>;

    constructor(config: unknown) {
      super();
      this.ready = loading.then(() => {
        const real = made('createPool')(config) as DropIn;
        mirror(real, this, EVENTS);
        this.#pool = real;
        return real;
      });
    }

    get real(): DropIn | null { return this.#pool; }
    getConnection(...args: unknown[]): unknown { return forward(this.#pool, this.ready, 'getConnection', args); }
    query(...args: unknown[]): unknown { return forward(this.#pool, this.ready, 'query', args); }
    execute(...args: unknown[]): unknown { return forward(this.#pool, this.ready, 'execute', args); }
    end(...args: unknown[]): unknown { return forward(this.#pool, this.ready, 'end', args); }
    releaseConnection(...args: unknown[]): unknown { return forward(this.#pool, this.ready, 'releaseConnection', args); }
    escape(...args: unknown[]): unknown { return (mysql?.['escape'] as Fn)(...args); }
    escapeId(...args: unknown[]): unknown { return (mysql?.['escapeId'] as Fn)(...args); }
    format(...args: unknown[]): unknown { return (mysql?.['format'] as Fn)(...args); }
    promise(): unknown { return new StandInPromisePool(this); }
    get lifeguard(): unknown { return this.#pool?.['lifeguard']; }
  }

  /** mysql2/promise's pool over a {@link StandInPool}. */
  class StandInPromisePool {
    readonly pool: StandInPool;
    readonly #ready: Promise<DropIn>;
    #promise: DropIn | null = null;

    constructor(pool: StandInPool) {
      this.pool = pool;
      this.#ready = pool.ready.then((real) => {
        this.#promise = (real['promise'] as () => DropIn)();
        return this.#promise;
      });
      this.#ready.catch(() => undefined);
    }

    getConnection(...args: unknown[]): unknown { return forward(this.#promise, this.#ready, 'getConnection', args); }
    query(...args: unknown[]): unknown { return forward(this.#promise, this.#ready, 'query', args); }
    execute(...args: unknown[]): unknown { return forward(this.#promise, this.#ready, 'execute', args); }
    end(...args: unknown[]): unknown { return forward(this.#promise, this.#ready, 'end', args); }
    on(event: string, listener: (...args: unknown[]) => void): this { this.pool.on(event, listener); return this; }
    escape(...args: unknown[]): unknown { return this.pool.escape(...args); }
    escapeId(...args: unknown[]): unknown { return this.pool.escapeId(...args); }
    format(...args: unknown[]): unknown { return this.pool.format(...args); }
    get lifeguard(): unknown { return this.pool.lifeguard; }
  }

  // Kept after the attach: an application may hold them (destructured); they then make real pools at once.
  mysql['createPool'] = function createPool(config: unknown): unknown {
    return loaded !== null ? made('createPool')(config) : new StandInPool(config);
  };
  if (mysqlPromise !== null) {
    mysqlPromise['createPool'] = function createPool(config: unknown): unknown {
      return loaded !== null ? made('createPromisePool')(config) : new StandInPool(config).promise();
    };
  }
}
