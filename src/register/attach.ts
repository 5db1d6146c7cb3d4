/** Zero-code attach: leak detection on the clients an unmodified application already uses, reported to stderr. */
import nodeModule, { createRequire } from 'node:module';
import dc from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { renameSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import { captureApplicationSite } from '../adapters/app-site.js';
import { InvalidOptionError } from '../pool/errors.js';
import early from './early.cjs';
import { watchHttpAgents } from './http-agents-watch.js';
import { watchIoredis } from './ioredis-watch.js';

/** What to attach to, and how; read from the environment by {@link attachFromEnv}. */
export interface AttachOptions {
  /** Clients to watch. @default all of them: `pg`, `mysql2`, `ioredis`, `http` (http/https), `fetch` (undici) */
  readonly clients?: readonly AttachClient[];
  /** A connection or request held longer than this is reported as a leak. @default 30000 */
  readonly leakAfterMs?: number;
  /**
   * ioredis: a line of the application is reported once this many clients it opened to one server have
   * stayed open longer than `leakAfterMs` (and again each time that number doubles). @default 3
   */
  readonly ioredisPerSite?: number;
  /**
   * http/https: a line of the application is reported once this many agents it made hold connections to one
   * origin open longer than `leakAfterMs` (and again each time that number doubles): a keep-alive agent made
   * per request and never destroyed (incident 1). @default 3
   */
  readonly httpAgentsPerSite?: number;
  /** Where JSON lines go. @default process.stderr */
  readonly write?: (line: string) => void;
  /** Starts Lifeguard's dashboard on 127.0.0.1 at this port (0: a free one). @default none */
  readonly dashboardPort?: number;
  /** On this signal, `diagnoseSelf()`'s report is written (to `reportFile`, else as a JSON line). @default none */
  readonly reportSignal?: NodeJS.Signals;
  /** File the signal's report is written to. @default none (a JSON line on stderr) */
  readonly reportFile?: string;
}

export type AttachClient = 'pg' | 'mysql2' | 'ioredis' | 'http' | 'fetch';
const ALL_CLIENTS: readonly AttachClient[] = ['pg', 'mysql2', 'ioredis', 'http', 'fetch'];

/** What {@link attach} did, and how to undo it. */
export interface Attached {
  /** The clients actually watched (a driver that is not installed is skipped). */
  readonly clients: readonly AttachClient[];
  /** The dashboard's URL, when one was started. */
  readonly dashboardUrl: string | null;
  /** Removes the subscriptions, the signal listener and the dashboard; pools already made stay as they are. */
  detach(): Promise<void>;
}

/** One request in flight, from its start until its response is done. */
interface Tracked {
  readonly client: 'http' | 'fetch';
  readonly target: string;
  readonly startedAt: number;
  /** Formats the captured stack, only when the request is reported. */
  readonly site: () => string | null;
  reported: boolean;
}

const requireHere = createRequire(import.meta.url);
const noSite = (): null => null;

function tryRequire(name: string): Record<string | symbol, unknown> | null {
  try {
    return requireHere(name) as Record<string | symbol, unknown>;
  } catch {
    return null;
  }
}

let attached: Attached | null = null;

/** Attaches once per process; a second call returns the first attachment. */
export async function attach(options: AttachOptions = {}): Promise<Attached> {
  if (attached !== null) return attached;
  const write = options.write ?? ((line: string): void => { process.stderr.write(line + '\n'); });
  const leakAfterMs = options.leakAfterMs ?? 30_000;
  const emit = (record: Record<string, unknown>): void => { write(JSON.stringify({ lifeguard: 'leak', ...record })); };
  const clients: AttachClient[] = [];
  const undo: (() => void | Promise<void>)[] = [];
  const wanted = new Set(options.clients ?? ALL_CLIENTS);
  const poolDefaults = { leakDetection: 'full', leakWarnAfterMs: leakAfterMs } as const;
  const onPoolLeak = (client: string) => (leak: { kind: string; pool: string; heldMs: number; appSite: string | null; site: string | null; stack: string | null; label: string | undefined; id: number }): void => {
    emit({ client, kind: leak.kind, pool: leak.pool, lease: leak.id, heldMs: Math.round(leak.heldMs), site: leak.appSite ?? leak.site, stack: leak.stack });
  };

  if (wanted.has('pg')) {
    const pg = tryRequire('pg');
    if (pg !== null) {
      const { PgPool } = await import('../adapters/pg-pool.js');
      const original = pg['Pool'];
      class Pool extends PgPool {
        constructor(config?: ConstructorParameters<typeof PgPool>[0], Client?: ConstructorParameters<typeof PgPool>[1]) {
          super({ ...config, lifeguard: { ...poolDefaults, ...config?.lifeguard } }, Client);
          this.on('leak', onPoolLeak('pg'));
        }
      }
      const standIn = pg[Symbol.for('lifeguard.pg.Pool')] !== undefined && original !== pg[Symbol.for('lifeguard.pg.Pool')];
      if (standIn) {
        // The CommonJS preload's stand-in is pg.Pool already (pools made before this attach are instances of
        // it): it stays, and makes its pools from this class.
        pg[Symbol.for('lifeguard.pg.AttachedPool')] = Pool;
        undo.push(() => { pg[Symbol.for('lifeguard.pg.AttachedPool')] = undefined; });
      } else {
        pg['Pool'] = Pool;
        undo.push(() => { pg['Pool'] = original; });
      }
      clients.push('pg');
    }
  }

  if (wanted.has('mysql2')) {
    const mysql = tryRequire('mysql2');
    const mysqlPromise = tryRequire('mysql2/promise');
    if (mysql !== null) {
      const { createPool } = await import('../adapters/mysql2-pool.js');
      const make = (config: Parameters<typeof createPool>[0]): ReturnType<typeof createPool> => {
        const options = typeof config === 'string' ? { uri: config } : config;
        const pool = createPool({ ...options, lifeguard: { ...poolDefaults, ...options.lifeguard } });
        pool.on('leak', onPoolLeak('mysql2'));
        return pool;
      };
      const makePromise = (config: Parameters<typeof createPool>[0]): unknown => {
        const core = make(config);
        return Object.defineProperty(core.promise(), 'lifeguard', { value: core.lifeguard, enumerable: false });
      };
      const originals = { callback: mysql['createPool'], promise: mysqlPromise?.['createPool'] };
      mysql['createPool'] = make;
      if (mysqlPromise !== null) mysqlPromise['createPool'] = makePromise;
      // The CommonJS preload's stand-ins (an application may hold them, destructured) make their pools here.
      mysql[Symbol.for('lifeguard.mysql2.createPool')] = make;
      mysql[Symbol.for('lifeguard.mysql2.createPromisePool')] = makePromise;
      undo.push(() => {
        mysql['createPool'] = originals.callback;
        if (mysqlPromise !== null) mysqlPromise['createPool'] = originals.promise;
        mysql[Symbol.for('lifeguard.mysql2.createPool')] = undefined;
        mysql[Symbol.for('lifeguard.mysql2.createPromisePool')] = undefined;
      });
      clients.push('mysql2');
    }
  }

  const housekeeping: HousekeepingTask[] = [];
  if (wanted.has('ioredis')) {
    const ioredis = tryRequire('ioredis');
    const watch = ioredis === null ? null : watchIoredis(ioredis, { leakAfterMs, perSite: options.ioredisPerSite ?? 3, emit });
    if (watch !== null) {
      housekeeping.push(watch.task);
      undo.push(watch.undo);
      clients.push('ioredis');
    }
  } else {
    // The CommonJS preload hooks ioredis before it knows the options: not wanted, it is undone.
    const ioredis = tryRequire('ioredis');
    if (ioredis !== null) early.unhookIoredis(ioredis);
  }

  // http and fetch: a request is held from its start until its response is done (consumed or destroyed).
  // One still open after leakAfterMs holds its connection: it is reported once, with the line that made it.
  const inFlight = new Map<object, Tracked>();
  const track = (key: object, client: 'http' | 'fetch', target: string, site: () => string | null): void => {
    inFlight.set(key, { client, target, startedAt: performance.now(), site, reported: false });
  };
  const task: HousekeepingTask = {
    periodMs: Math.max(10, Math.min(1000, Math.floor(leakAfterMs / 4))),
    run(): void {
      const now = performance.now();
      for (const tracked of inFlight.values()) {
        if (tracked.reported || now - tracked.startedAt < leakAfterMs) continue;
        tracked.reported = true;
        emit({ client: tracked.client, kind: 'held', target: tracked.target, heldMs: Math.round(now - tracked.startedAt), site: tracked.site() });
      }
    },
  };
  let watching = false;

  if (wanted.has('http')) {
    // node publishes http.client.request.start once the request has a socket, when the application's
    // frames are gone: its line is taken where it calls request() or get(), and found again by the request.
    const sites = new WeakMap<object, () => string | null>();
    for (const mod of [http, https] as unknown as Record<string, (...args: unknown[]) => http.ClientRequest>[]) {
      for (const name of ['request', 'get']) {
        const original = mod[name];
        if (original === undefined) continue;
        const wrapped = function (this: unknown, ...args: unknown[]): http.ClientRequest {
          const request = Reflect.apply<unknown, unknown[], http.ClientRequest>(original, this, args);
          sites.set(request, captureApplicationSite());
          return request;
        };
        mod[name] = wrapped;
        undo.push(() => { mod[name] = original; nodeModule.syncBuiltinESMExports(); });
      }
    }
    nodeModule.syncBuiltinESMExports();
    const agents = watchHttpAgents({ leakAfterMs, perSite: options.httpAgentsPerSite ?? 3, emit });
    housekeeping.push(agents.task);
    undo.push(() => { agents.undo(); });
    const onStart = (message: unknown): void => {
      const request = (message as { request: http.ClientRequest }).request;
      const agent = (request as unknown as { agent?: unknown }).agent;
      const agentName = agent === http.globalAgent ? 'http.globalAgent' : agent === https.globalAgent ? 'https.globalAgent' : 'agent';
      const site = sites.get(request) ?? noSite;
      track(request, 'http', `${agentName} ${request.method} ${request.protocol}//${String(request.getHeader('host') ?? request.host)}${request.path}`, site);
      agents.follow(request, site);
      request.once('close', () => { inFlight.delete(request); });
    };
    dc.subscribe('http.client.request.start', onStart);
    undo.push(() => { dc.unsubscribe('http.client.request.start', onStart); });
    clients.push('http');
    watching = true;
  }

  if (wanted.has('fetch')) {
    const onCreate = (message: unknown): void => {
      const request = (message as { request: { origin?: unknown; path?: unknown; method?: unknown } }).request;
      track(request, 'fetch', `${String(request.method)} ${String(request.origin)}${String(request.path)}`, captureApplicationSite());
    };
    const onDone = (message: unknown): void => { inFlight.delete((message as { request: object }).request); };
    dc.subscribe('undici:request:create', onCreate);
    dc.subscribe('undici:request:trailers', onDone);
    dc.subscribe('undici:request:error', onDone);
    undo.push(() => {
      dc.unsubscribe('undici:request:create', onCreate);
      dc.unsubscribe('undici:request:trailers', onDone);
      dc.unsubscribe('undici:request:error', onDone);
    });
    clients.push('fetch');
    watching = true;
  }

  if (watching) {
    housekeeping.push(task);
    undo.push(() => { inFlight.clear(); });
  }
  if (housekeeping.length > 0) {
    const keeper = Housekeeper.for();
    for (const t of housekeeping) keeper.register(t);
    undo.push(() => { for (const t of housekeeping) keeper.unregister(t); });
  }

  let dashboardUrl: string | null = null;
  if (options.dashboardPort !== undefined) {
    const { startDashboard } = await import('../dashboard/index.js');
    const dashboard = await startDashboard({ port: options.dashboardPort, host: '127.0.0.1' });
    dashboardUrl = dashboard.url;
    write(JSON.stringify({ lifeguard: 'dashboard', url: dashboard.url }));
    undo.push(() => dashboard.close());
  }

  if (options.reportSignal !== undefined) {
    const signal = options.reportSignal;
    const file = options.reportFile;
    const onSignal = (): void => {
      void import('../doctor/index.js').then(({ diagnoseSelf }) => diagnoseSelf()).then((report) => {
        if (file === undefined) write(JSON.stringify({ lifeguard: 'report', report }));
        else {
          // Written aside and renamed: a reader (lifeguard doctor --pid) never sees half a report.
          const partial = `${file}.${process.pid}.tmp`;
          writeFileSync(partial, JSON.stringify(report, null, 2) + '\n');
          renameSync(partial, file);
          write(JSON.stringify({ lifeguard: 'report', file }));
        }
      }, (error: unknown) => {
        write(JSON.stringify({ lifeguard: 'report-error', message: error instanceof Error ? error.message : String(error) }));
      });
    };
    process.on(signal, onSignal);
    undo.push(() => { process.off(signal, onSignal); });
  }

  const result: Attached = {
    clients,
    dashboardUrl,
    async detach(): Promise<void> {
      attached = null;
      for (const step of undo.reverse()) await step();
    },
  };
  attached = result;
  return result;
}

// For the CommonJS preload (index.cts), which runs the calls it deferred in the caller's line.
export { callerSite, siteOf } from '../adapters/app-site.js';

const SIGNALS = new Set(['SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGWINCH', 'SIGINFO', 'SIGPWR']);

/**
 * Reads the options from the environment (docs/find-a-leak.md):
 * `LIFEGUARD_ATTACH` (comma list of pg, mysql2, ioredis, http, fetch; default all), `LIFEGUARD_LEAK_AFTER_MS`,
 * `LIFEGUARD_IOREDIS_PER_SITE`, `LIFEGUARD_HTTP_AGENTS_PER_SITE`,
 * `LIFEGUARD_DASHBOARD_PORT`, `LIFEGUARD_REPORT_SIGNAL`, `LIFEGUARD_REPORT_FILE`. Bad values are refused,
 * naming the variable.
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): AttachOptions {
  const out: { -readonly [K in keyof AttachOptions]: AttachOptions[K] } = {};
  const list = env['LIFEGUARD_ATTACH'];
  if (list !== undefined && list !== '') {
    const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const name of names) {
      if (!(ALL_CLIENTS as readonly string[]).includes(name)) {
        throw new InvalidOptionError('LIFEGUARD_ATTACH', `invalid LIFEGUARD_ATTACH: expected a comma list of ${ALL_CLIENTS.join(', ')}, got "${name}" in "${list}"`);
      }
    }
    out.clients = names as AttachClient[];
  }
  const number = (name: string, min: number): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || (name.endsWith('PORT') && value > 65535)) {
      throw new InvalidOptionError(name, `invalid ${name}: expected an integer >= ${min}${name.endsWith('PORT') ? ' and <= 65535' : ''}, got "${text}"`);
    }
    return value;
  };
  const leakAfterMs = number('LIFEGUARD_LEAK_AFTER_MS', 1);
  if (leakAfterMs !== undefined) out.leakAfterMs = leakAfterMs;
  const perSite = number('LIFEGUARD_IOREDIS_PER_SITE', 1);
  if (perSite !== undefined) out.ioredisPerSite = perSite;
  const agentsPerSite = number('LIFEGUARD_HTTP_AGENTS_PER_SITE', 1);
  if (agentsPerSite !== undefined) out.httpAgentsPerSite = agentsPerSite;
  const port = number('LIFEGUARD_DASHBOARD_PORT', 0);
  if (port !== undefined) out.dashboardPort = port;
  const signal = env['LIFEGUARD_REPORT_SIGNAL'];
  if (signal !== undefined && signal !== '') {
    if (!SIGNALS.has(signal)) throw new InvalidOptionError('LIFEGUARD_REPORT_SIGNAL', `invalid LIFEGUARD_REPORT_SIGNAL: expected one of ${[...SIGNALS].join(', ')}, got "${signal}"`);
    out.reportSignal = signal as NodeJS.Signals;
  }
  const file = env['LIFEGUARD_REPORT_FILE'];
  if (file !== undefined && file !== '') out.reportFile = file;
  return out;
}

/** What `--import lifeguard/register` runs. */
export function attachFromEnv(): Promise<Attached> {
  return attach(optionsFromEnv());
}
