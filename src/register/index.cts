/**
 * `node -r lifeguard/register app.js` (CommonJS preload): replaces pg.Pool and mysql2's createPool at once,
 * with stand-ins bound to Lifeguard's (ESM) drop-ins as soon as those are loaded, a few milliseconds later;
 * the rest of the attach (http, fetch, dashboard, signal) starts then too.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS file: import = require is its import
import nodeModule = require('node:module');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
import url = require('node:url');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
import early = require('./early.cjs');

type Dict = Record<string, unknown>;
interface Loaded {
  PgPool?: new (config?: Dict, Client?: unknown) => DropIn;
  attach: (options: Dict) => Promise<unknown>;
  optionsFromEnv: () => Dict;
  createPool?: (config: unknown) => DropIn & { promise(): unknown };
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

// The ESM part. Its attach() replaces pg.Pool and createPool with the real drop-ins; the stand-ins below
// cover the pools an application makes before that.
const loading: Promise<Loaded> = (async () => {
  const register = await import(url.pathToFileURL(`${dir}/attach.js`).href) as unknown as Loaded;
  const options = register.optionsFromEnv();
  await register.attach(options);
  return register;
})();
loading.catch((error: unknown) => {
  process.stderr.write(JSON.stringify({ lifeguard: 'attach-error', message: error instanceof Error ? error.message : String(error) }) + '\n');
});

if (pg !== null && originalPgPool !== undefined) {
  const EVENTS = ['connect', 'acquire', 'release', 'remove', 'error', 'leak'];
  // A pg.Pool made before the attach finished: a pg.Pool (instanceof holds) whose every call goes to the
  // real drop-in, made from the same arguments once it can be.
  class Pool extends originalPgPool {
    #pool: DropIn | null = null;
    readonly #ready: Promise<DropIn>;

    constructor(...args: unknown[]) {
      super(...args);
      this.#ready = loading.then(() => {
        const Real = (pg as Record<string | symbol, unknown>)[Symbol.for('lifeguard.pg.AttachedPool')] as new (...a: unknown[]) => DropIn;
        const real = new Real(...args);
        for (const event of EVENTS) real.on(event, (...payload: unknown[]) => { (this as unknown as { emit(e: string, ...p: unknown[]): boolean }).emit(event, ...payload); });
        this.#pool = real;
        return real;
      });
    }

    #call(method: string, args: unknown[]): unknown {
      const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] as (err: unknown) => void : undefined;
      if (this.#pool !== null) return (this.#pool[method] as (...a: unknown[]) => unknown)(...args);
      const result = this.#ready.then((real) => (real[method] as (...a: unknown[]) => unknown)(...args));
      if (callback === undefined) return result;
      result.catch((error: unknown) => { callback(error); });
      return undefined;
    }

    connect(...args: unknown[]): unknown { return this.#call('connect', args); }
    query(...args: unknown[]): unknown { return this.#call('query', args); }
    end(...args: unknown[]): unknown { return this.#call('end', args); }
    get lifeguard(): unknown { return this.#pool?.['lifeguard']; }
    get totalCount(): number { return (this.#pool?.['totalCount'] as number | undefined) ?? 0; }
    get idleCount(): number { return (this.#pool?.['idleCount'] as number | undefined) ?? 0; }
    get waitingCount(): number { return (this.#pool?.['waitingCount'] as number | undefined) ?? 0; }
    get expiredCount(): number { return (this.#pool?.['expiredCount'] as number | undefined) ?? 0; }
  }
  pg['Pool'] = Pool;
}

