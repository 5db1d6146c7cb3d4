import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import type { ProcOptions } from '../doctor/proc.js';
import type { Clock } from '../internal/clock.js';
import { AlertMonitor, type AlertMonitorOptions } from '../metrics/alerts.js';
import { clockOption, MetricsCollector, optionsRecord } from '../metrics/collector.js';
import { loadOptional, useCollector } from '../metrics/optional.js';
import { registerPrometheus, type PrometheusMetrics } from '../metrics/prometheus.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption } from '../pool/options.js';
import { APP_JS, pageHtml } from './page.js';
import { DashboardSampler, type DashboardState } from './sampler.js';

export interface DashboardOptions {
  /** How often pools and sockets are sampled (and the page updated). @default 1000 */
  readonly sampleIntervalMs?: number;
  /** Samples kept per series: what a page opened late still shows. @default 300 */
  readonly historyLength?: number;
  /** Title of the page. @default 'Lifeguard' */
  readonly title?: string;
  /** Sample the process's TCP sockets, descriptors and threads from `/proc`. @default true on Linux, false elsewhere */
  readonly process?: boolean;
  /** Process whose sockets are shown (the CLI shows another process's). @default process.pid */
  readonly pid?: number;
  /** Where `/proc` is (see the doctor's `ProcOptions`). @default { procRoot: '/proc' } */
  readonly proc?: ProcOptions;
  /** Alerts shown on the page: a monitor of yours, options for one the dashboard makes, or false for none. @default a new AlertMonitor with default thresholds */
  readonly alerts?: AlertMonitor | AlertMonitorOptions | false;
  /** Serve `/metrics` in the Prometheus text format (needs prom-client). @default true */
  readonly metrics?: boolean;
  /** Collector to read; one of its own is made (and closed with the dashboard) when not given. @default a new MetricsCollector */
  readonly collector?: MetricsCollector;
  /** Time source of sampling, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
}

export interface DashboardHandlerOptions extends DashboardOptions {
  /** URL path the dashboard lives under (`/` or `/ops/lifeguard`). @default '/' */
  readonly basePath?: string;
}

/**
 * A request handler serving the dashboard under `basePath`: usable as a plain `http` listener, or as
 * connect/express middleware (requests outside `basePath` go to `next`, else get a 404).
 */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  readonly basePath: string;
  /** True when `url` is under `basePath`. */
  handles(url: string | undefined): boolean;
  /** The current state, as `/api/state` serves it. */
  state(): DashboardState;
  /**
   * Stops sampling, ends the event streams, closes what the dashboard made; resolves once no read of
   * `/proc` it started is still in flight. Idempotent.
   */
  close(): Promise<void>;
}

/** @internal Option keys common to every way of serving the dashboard. */
export const KNOWN_DASHBOARD = ['sampleIntervalMs', 'historyLength', 'title', 'process', 'pid', 'proc', 'alerts', 'metrics', 'collector', 'clock'];
const KNOWN_HANDLER = new Set([...KNOWN_DASHBOARD, 'basePath']);

const require = createRequire(import.meta.url);
let uplotAssets: { readonly js: string; readonly css: string } | null = null;

/** uPlot's browser build and stylesheet, from its package (a runtime dependency), read once. */
function uplot(): { readonly js: string; readonly css: string } {
  uplotAssets ??= {
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
  return uplotAssets;
}

function normalizeBase(value: unknown): string {
  if (value === undefined) return '/';
  if (typeof value !== 'string' || !value.startsWith('/') || /[?#\s]/.test(value)) {
    throw new InvalidOptionError('basePath', `invalid option "basePath": expected a URL path starting with "/" (no query, fragment or spaces), got ${describe(value)}`);
  }
  return value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  // The page runs only its own script; uPlot sets inline styles.
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
};

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS });
  res.end(head ? undefined : body);
}

/** Builds the dashboard as a request handler; see {@link DashboardHandler}. */
export function dashboardHandler(options?: DashboardHandlerOptions): DashboardHandler {
  const source = optionsRecord(options, KNOWN_HANDLER, 'dashboardHandler');
  return createHandler(source, normalizeBase(source['basePath']));
}

/** @internal Builds a handler from already-checked option keys. */
export function createHandler(source: Record<string, unknown>, basePath: string): DashboardHandler {
  const clock = source['clock'] === undefined ? undefined : clockOption(source);
  const sampleIntervalMs = numberOption(source, 'sampleIntervalMs', 1000, { min: 10 });
  const historyLength = numberOption(source, 'historyLength', 300, { integer: true, min: 2 });
  const title = source['title'] ?? 'Lifeguard';
  if (typeof title !== 'string') throw new InvalidOptionError('title', `invalid option "title": expected a string, got ${describe(title)}`);
  const readProcess = source['process'] ?? process.platform === 'linux';
  if (typeof readProcess !== 'boolean') throw new InvalidOptionError('process', `invalid option "process": expected a boolean, got ${describe(readProcess)}`);
  const pid = numberOption(source, 'pid', process.pid, { integer: true, min: 1 });
  const proc = source['proc'];
  if (proc !== undefined && (typeof proc !== 'object' || proc === null)) throw new InvalidOptionError('proc', `invalid option "proc": expected an object of /proc reader options, got ${describe(proc)}`);
  const serveMetrics = source['metrics'] ?? true;
  if (typeof serveMetrics !== 'boolean') throw new InvalidOptionError('metrics', `invalid option "metrics": expected a boolean, got ${describe(serveMetrics)}`);
  const alertsOption = source['alerts'];
  if (alertsOption !== undefined && alertsOption !== false && (typeof alertsOption !== 'object' || alertsOption === null)) {
    throw new InvalidOptionError('alerts', `invalid option "alerts": expected an AlertMonitor, AlertMonitor options or false, got ${describe(alertsOption)}`);
  }

  // Everything that subscribes or registers comes last, once the options are known to be valid.
  const { collector, owned } = useCollector(source['collector'], clock);
  const cleanups: (() => void)[] = [];
  if (owned) cleanups.push(() => { collector.close(); });
  const pending: (() => Promise<void>)[] = [];
  let alerts: AlertMonitor | null = null;
  let prometheus: PrometheusMetrics | null = null;
  let metricsError: string | null = serveMetrics ? null : '/metrics is off (metrics: false)';
  try {
    if (alertsOption instanceof AlertMonitor) alerts = alertsOption;
    else if (alertsOption !== false) {
      const monitor = new AlertMonitor({ process: readProcess, pid, ...(proc === undefined ? {} : { proc }), ...(alertsOption as AlertMonitorOptions | undefined), collector });
      alerts = monitor;
      cleanups.push(() => { monitor.close(); });
      pending.push(() => monitor.idle());
    }
    if (serveMetrics) {
      try {
        const client = loadOptional('prom-client', 'the dashboard\'s /metrics') as { Registry: new () => Registry };
        const exporter = registerPrometheus({ registry: new client.Registry(), collector });
        prometheus = exporter;
        cleanups.push(() => { exporter.close(); });
      } catch (error) {
        metricsError = error instanceof Error ? error.message : String(error);
      }
    }
  } catch (error) {
    for (const cleanup of cleanups.reverse()) cleanup();
    throw error;
  }

  const streams = new Set<ServerResponse>();
  let sampler: DashboardSampler | null = null;
  const broadcast = (): void => {
    if (streams.size === 0 || sampler === null) return;
    const data = `data: ${JSON.stringify(sampler.state())}\n\n`;
    for (const res of streams) res.write(data);
  };
  sampler = new DashboardSampler({
    clock: collector.clock, collector, alerts, sampleIntervalMs, historyLength, process: readProcess, pid,
    proc, onSample: broadcast,
  });
  const activeSampler = sampler;

  const prefix = basePath === '/' ? '' : basePath;
  const route = (url: string | undefined): string | null => {
    const pathname = (url ?? '/').split('?')[0] ?? '/';
    if (prefix === '') return pathname;
    if (pathname === prefix) return '';
    return pathname.startsWith(`${prefix}/`) ? pathname.slice(prefix.length) : null;
  };
  let closed = false;

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void => {
    const path = route(req.url);
    if (path === null || closed) {
      if (next !== undefined) next();
      else send(res, 404, 'text/plain; charset=utf-8', closed ? 'the dashboard is closed\n' : 'not found\n', false);
      return;
    }
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', `method ${method} not allowed: the dashboard is read-only\n`, false);
      return;
    }
    const head = method === 'HEAD';
    switch (path) {
      case '':
        // Relative asset URLs need the trailing slash.
        res.writeHead(308, { location: `${prefix}/` });
        res.end();
        return;
      case '/':
      case '/index.html':
        send(res, 200, 'text/html; charset=utf-8', pageHtml(title), head);
        return;
      case '/app.js':
        send(res, 200, 'text/javascript; charset=utf-8', APP_JS, head);
        return;
      case '/uplot.js':
        send(res, 200, 'text/javascript; charset=utf-8', uplot().js, head);
        return;
      case '/uplot.css':
        send(res, 200, 'text/css; charset=utf-8', uplot().css, head);
        return;
      case '/favicon.ico':
        // Browsers ask for it; answering spares a 404 in every page's console.
        res.writeHead(204, SECURITY_HEADERS);
        res.end();
        return;
      case '/api/state':
        send(res, 200, 'application/json; charset=utf-8', JSON.stringify(activeSampler.state()), head);
        return;
      case '/metrics': {
        if (prometheus === null) {
          send(res, 501, 'text/plain; charset=utf-8', `${metricsError ?? 'unavailable'}\n`, head);
          return;
        }
        const { registry } = prometheus;
        registry.metrics().then(
          (text) => { send(res, 200, registry.contentType, text, head); },
          (error: unknown) => { send(res, 500, 'text/plain; charset=utf-8', `collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`, head); },
        );
        return;
      }
      case '/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...SECURITY_HEADERS });
        if (head) {
          res.end();
          return;
        }
        res.write(`retry: ${Math.max(1000, sampleIntervalMs)}\ndata: ${JSON.stringify(activeSampler.state())}\n\n`);
        streams.add(res);
        res.on('close', () => streams.delete(res));
        return;
      }
      default:
        send(res, 404, 'text/plain; charset=utf-8', `not found: ${path}\n`, head);
    }
  }) as DashboardHandler;

  return Object.assign(handler, {
    basePath,
    handles: (url: string | undefined) => route(url) !== null,
    state: () => activeSampler.state(),
    close: () => {
      if (!closed) {
        closed = true;
        activeSampler.close();
        for (const res of streams) res.end();
        streams.clear();
        for (const cleanup of cleanups.reverse()) cleanup();
      }
      return Promise.all([activeSampler.idle(), ...pending.map((p) => p())]).then(() => undefined);
    },
  });
}

/** What {@link mountDashboard} returns. */
export interface MountedDashboard {
  readonly path: string;
  readonly handler: DashboardHandler;
  /** Gives the server its own request listeners back and closes the dashboard (see {@link DashboardHandler.close}). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves the dashboard under `path` on a server of yours: requests under `path` go to the dashboard,
 * every other request to the server's own `request` listeners, as before.
 */
export function mountDashboard(server: Server, path = '/lifeguard', options?: DashboardOptions): MountedDashboard {
  if (typeof server !== 'object' || typeof (server as Partial<Server>).listeners !== 'function') {
    throw new InvalidOptionError('server', `invalid argument "server": expected an http.Server, got ${describe(server)}`);
  }
  const source = optionsRecord(options, new Set(KNOWN_DASHBOARD), 'mountDashboard');
  const handler = createHandler(source, normalizeBase(path));
  const previous = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (handler.handles(req.url)) handler(req, res);
    else for (const l of previous) l.call(server, req, res);
  };
  server.removeAllListeners('request');
  server.on('request', listener);
  let closed = false;
  return {
    path: handler.basePath,
    handler,
    close() {
      if (!closed) {
        closed = true;
        server.off('request', listener);
        for (const l of previous) server.on('request', l);
      }
      return handler.close();
    },
  };
}
