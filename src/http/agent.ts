import http from 'node:http';
import net from 'node:net';
import type { AcquireSite } from '../leak/site.js';
import { ErrorCodes } from '../pool/errors.js';
import type { Lease } from '../pool/lease.js';
import { Pool } from '../pool/pool.js';
import { HttpCore, emitLeak, statsOf, type HttpStats, type TrackedResponse } from './core.js';
import { HttpClosedError, QueueFullError, QueueTimeoutError } from './errors.js';
import { PooledSocket } from './connection.js';
import { resolveHttpPoolOptions, type HttpPoolOptions } from './options.js';

/** A socket of the agent and the request it currently serves (its loan). */
class AgentSocket extends PooledSocket {
  loan: AgentRequest | null = null;
}

/**
 * A request sent through the agent, from the moment it gets a socket until the socket is free again
 * (response consumed). Node's client gives the agent no response-headers hook without a listener per
 * request, so the body-leak clock starts when the socket is lent.
 */
class AgentRequest implements TrackedResponse {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly site: AcquireSite | null;
  readonly req: http.ClientRequest;
  readonly entry: AgentOrigin;
  headersAt = 0;
  leakReported = false;
  bodyPending = false;
  lease: Lease<AgentSocket> | null = null;

  constructor(entry: AgentOrigin, req: http.ClientRequest, site: AcquireSite | null) {
    this.origin = entry.origin;
    this.entry = entry;
    this.req = req;
    this.method = req.method;
    this.path = req.path;
    this.site = site;
  }

  abandon(error: Error): void {
    if (this.bodyPending) this.lease?.resource.socket.destroy(error);
  }
}

interface AgentOrigin {
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  readonly pool: Pool<AgentSocket>;
}

interface AddRequestOptions {
  readonly host?: string | null;
  readonly hostname?: string | null;
  readonly port?: number | string | null;
}

/**
 * An `http.Agent` for libraries that take `agent`/`httpAgent` (axios, got, the AWS SDK's Node handler).
 * Its sockets come from Lifeguard pools, one per origin, under the same connection gate (per-origin and
 * total caps) as the dispatcher it was made from, and with the same hygiene: keep-alive reuse, idle and
 * lifetime eviction, eviction of idle sockets the server closed, and response bodies that hold their
 * socket until consumed (reported when left unconsumed). Plain `http:` origins.
 */
export class LifeguardAgent extends http.Agent {
  readonly #core: HttpCore;
  /** True when this agent made its core (standalone) and so closes it. */
  readonly #owner: boolean;
  readonly #origins = new Map<string, AgentOrigin>();

  /** A standalone agent with its own caps; `dispatcher.createAgent()` makes one that shares a dispatcher's. */
  constructor(options?: HttpPoolOptions | { readonly core: HttpCore }) {
    super({ keepAlive: true });
    if (options !== undefined && 'core' in options && options.core instanceof HttpCore) {
      this.#core = options.core;
      this.#owner = false;
    } else {
      const given = (options ?? {}) as HttpPoolOptions;
      this.#core = new HttpCore(resolveHttpPoolOptions(given, 'LifeguardAgent'), given, null, (report) => {
        emitLeak(this, report);
      });
      this.#owner = true;
    }
  }

  /** Called by node's `ClientRequest`: lends a pooled socket, asynchronously, then hands it to `req`. */
  addRequest(req: http.ClientRequest, options: AddRequestOptions): void {
    const core = this.#core;
    if (core.closed) {
      failRequest(req, core.closedError('send a request through the agent'));
      return;
    }
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 80);
    const entry = this.#entry(host, port);
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    const request = new AgentRequest(entry, req, core.sampler.capture(LifeguardAgent.prototype.addRequest, core.clock.now()));
    core.counters.requests++;
    this.#acquire(request);
  }

  #acquire(request: AgentRequest): void {
    request.entry.pool.acquire().then((lease) => {
      this.#lend(request, lease);
    }, (error: unknown) => {
      failRequest(request.req, this.#wrap(error, request));
    });
  }

  #wrap(error: unknown, request: AgentRequest): Error {
    const code = (error as { code?: unknown }).code;
    const origin = request.origin;
    const what = `${request.method} ${origin}${request.path}`;
    if (code === ErrorCodes.ACQUIRE_TIMEOUT) return new QueueTimeoutError(`${what}: no agent connection to ${origin} became free in time (${(error as Error).message.split('\n')[0] ?? ''})`, { cause: error });
    if (code === ErrorCodes.QUEUE_FULL) return new QueueFullError(`${what}: rejected at once, the agent queue of ${origin} is full (maxWaiting=${this.#core.o.maxWaiting})`, { cause: error });
    if (code === ErrorCodes.POOL_CLOSED) return new HttpClosedError(`${what}: the agent was closed`, { cause: error });
    return error instanceof Error ? error : new Error(String(error));
  }

  #lend(request: AgentRequest, lease: Lease<AgentSocket>): void {
    const core = this.#core;
    const conn = lease.resource;
    const now = core.clock.now();
    if (!conn.usable(now)) {
      lease.destroy(conn.gone ?? new Error('agent connection no longer usable'));
      this.#acquire(request);
      return;
    }
    conn.idle = false;
    conn.loan = request;
    request.lease = lease;
    request.headersAt = now;
    request.bodyPending = true;
    core.inflight.add(request);
    if (conn.requests > 0) request.req.reusedSocket = true;
    conn.requests++;
    conn.socket.ref();
    request.req.onSocket(conn.socket);
  }

  /** The socket's request is over: `free` (response consumed, keep-alive), or closed, or upgraded. */
  #end(conn: AgentSocket, destroy: boolean, cause?: unknown): void {
    const request = conn.loan;
    if (request === null) return;
    conn.loan = null;
    request.bodyPending = false;
    const core = this.#core;
    core.inflight.delete(request);
    const lease = request.lease;
    request.lease = null;
    if (lease?.active !== true) return;
    const res = (request.req as { res?: http.IncomingMessage }).res;
    if (res !== undefined) {
      if (res.headers.connection?.toLowerCase() === 'close') conn.reusable = false;
      const keepAlive = res.headers['keep-alive'] as string | undefined;
      const match = keepAlive === undefined ? null : /timeout\s*=\s*(\d+)/i.exec(keepAlive);
      if (match !== null) conn.keepAliveHint(Number(match[1]), core.o.keepAliveSafetyMarginMs, core.clock.now());
    }
    const now = core.clock.now();
    if (!destroy && conn.usable(now) && request.req.shouldKeepAlive) {
      conn.socket.unref();
      conn.parked(now);
      lease.release();
    } else {
      lease.destroy(cause ?? conn.gone ?? new Error('agent connection not reusable'));
    }
  }

  #entry(host: string, port: number): AgentOrigin {
    const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return this.#origins.get(origin) ?? this.#newEntry(origin, host, port);
  }

  #newEntry(origin: string, host: string, port: number): AgentOrigin {
    const core = this.#core;
    const o = core.o;
    const gate = core.gate;
    const pool: Pool<AgentSocket> = new Pool<AgentSocket>({
      name: `${o.name}-agent ${origin}`,
      factory: {
        create: async (context) => {
          await gate.acquire(origin, context.signal);
          try {
            const socket = await connect(host, port, o.connectTimeoutMs, context.signal);
            const conn = new AgentSocket(origin, socket, gate, context.invalidate, core.clock.now());
            // Installed once per socket, not per request: node's own agent does the same.
            socket.on('free', () => { this.#end(conn, false); });
            socket.on('close', () => { this.#end(conn, true); });
            // An upgrade or CONNECT hands the socket to the caller: it leaves the pool without being closed.
            socket.on('agentRemove', () => {
              conn.detached = true;
              this.#end(conn, true, new Error('socket removed from the agent (upgrade)'));
            });
            return conn;
          } catch (error) {
            gate.release(origin);
            throw error;
          }
        },
        destroy: (conn) => conn.dispose(),
        validate: (conn) => conn.usable(core.clock.now()),
        socket: (conn) => conn.socket,
      },
      max: o.connectionsPerOrigin,
      maxWaiting: o.maxWaiting,
      acquireTimeoutMs: o.acquireTimeoutMs,
      createTimeoutMs: Infinity,
      maxConcurrentCreates: Math.min(o.connectionsPerOrigin, 8),
      idleTimeoutMs: o.idleTimeoutMs,
      maxLifetimeMs: o.maxLifetimeMs,
      maxLifetimeJitterMs: o.maxLifetimeJitterMs,
      validateAfterIdleMs: Math.min(1000, o.keepAliveSafetyMarginMs),
      leakDetection: 'off',
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    core.addPool(pool as Pool<unknown>);
    const entry: AgentOrigin = { origin, host, port, pool };
    this.#origins.set(origin, entry);
    return entry;
  }

  stats(): HttpStats {
    return statsOf(this.#core, [...this.#origins.values()].map((e) => e.pool.stats()));
  }

  /** The Lifeguard pools of this agent, one per origin. */
  pools(): Pool<AgentSocket>[] {
    return [...this.#origins.values()].map((e) => e.pool);
  }

  /** Closes the agent's pools (waiting up to `closeTimeoutMs` for requests in flight); a standalone agent closes its caps too. */
  async close(): Promise<void> {
    if (this.#owner) {
      await this.#core.close();
      return;
    }
    await Promise.all(this.pools().map((p) => p.close({ timeoutMs: this.#core.o.closeTimeoutMs })));
  }

  /** `http.Agent#destroy`: closes every socket at once. */
  override destroy(): void {
    if (this.#owner) void this.#core.destroy(new Error('agent destroyed'));
    else for (const pool of this.pools()) void pool.destroy(new Error('agent destroyed'));
    super.destroy();
  }
}

/** Fails a request that never got a socket: node's own agent does it the same way (`onSocket(socket, err)`). */
function failRequest(req: http.ClientRequest, error: Error): void {
  const onSocket = req.onSocket.bind(req) as (socket: net.Socket | undefined, err: Error) => void;
  onSocket(undefined, error);
}

function connect(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
    const timer = setTimeout(() => { fail(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms (connectTimeoutMs)`)); }, timeoutMs);
    const onAbort = (): void => { fail(signal.reason as Error); };
    const cleanup = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.off('error', fail);
    };
    function fail(error: Error): void {
      cleanup();
      socket.destroy();
      reject(error);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('connect', () => {
      cleanup();
      resolve(socket);
    });
  });
}
