import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { AcquireSite } from '../leak/site.js';
import { ErrorCodes } from '../pool/errors.js';
import type { Lease } from '../pool/lease.js';
import { Pool, kAcquireInto, kWaiting, kWithdraw, type AcquireReceiver } from '../pool/pool.js';
import { HttpCore, budgetOption, type AgentPools, describeHolders, emitLeak, reapIdlePools, statsOf, type HttpStats, type ReapablePool, type TrackedResponse } from './core.js';
import { InvalidOptionError } from '../internal/errors.js';
import { describe } from '../internal/options.js';
import { HttpClosedError, QueueFullError, QueueTimeoutError } from './errors.js';
import { PooledSocket, lossDeferred, readConnectionHeaderStrings } from './connection.js';
import { resolveHttpPoolOptions, type HttpPoolOptions } from './options.js';
import { leaseLabel } from './site.js';

/** A socket of the agent and the request it currently serves (its loan). */
class AgentSocket extends PooledSocket {
  loan: AgentRequest | null = null;
}

/**
 * A request sent through the agent, from the moment it gets a socket until the socket is free again
 * (response consumed). Node's client gives the agent no response-headers hook without a listener per
 * request; node sets `req.res` when the headers arrive, and the body-leak check stamps the response the
 * first time it sees it there (so a slow server's think time never counts as an unconsumed body).
 */
class AgentRequest implements TrackedResponse, AcquireReceiver<AgentSocket> {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly site: AcquireSite | null;
  readonly req: http.ClientRequest;
  readonly entry: AgentOrigin;
  readonly #engine: AgentEngine;
  /** Stamped by the body-leak check when it first sees the response (NaN until then). */
  headersAt = NaN;
  readAt = NaN;
  bytesSeen = 0;
  leakReported = false;
  /** The socket is lent to this request (until the response is consumed, or the socket closes). */
  lent = false;
  /** When the socket was lent: the reference of keep-alive hints, which must end early rather than late. */
  lentAt = 0;
  lease: Lease<AgentSocket> | null = null;
  /** The lent socket (kept here: a revoked lease's `resource` throws). */
  socket: net.Socket | null = null;
  /** Already failed (by a failed connect): a lease it still gets goes straight back. */
  failed = false;
  readonly startedAt: number;
  /** The pool acquire's options, when the call site was captured: it becomes the lease's acquire site, the request its label. */
  readonly acquireOptions: { readonly site: AcquireSite; readonly label: string } | undefined;
  #over = false;

  constructor(engine: AgentEngine, entry: AgentOrigin, req: http.ClientRequest, site: AcquireSite | null, now: number) {
    this.#engine = engine;
    this.origin = entry.origin;
    this.entry = entry;
    this.req = req;
    this.method = req.method;
    this.path = req.path;
    this.site = site;
    this.startedAt = now;
    this.acquireOptions = site === null ? undefined : { site, label: leaseLabel(req.method, entry.origin, req.path) };
    entry.active++;
  }

  /** The request no longer holds or waits for a socket: it stops counting as demand on its origin. */
  over(): void {
    if (this.#over) return;
    this.#over = true;
    this.entry.active--;
  }

  /** The response headers arrived and its socket is still lent: the body is not consumed yet. */
  get bodyPending(): boolean {
    return this.lent && (this.req as { res?: http.IncomingMessage | null }).res != null;
  }

  get bytesRead(): number {
    return this.socket?.bytesRead ?? 0;
  }

  abandon(error: Error): void {
    if (this.bodyPending) this.lease?.resource.socket.destroy(error);
  }

  /** @internal The pool lends a socket (AcquireReceiver: no promise, no AbortSignal per request). */
  onLease(lease: Lease<AgentSocket>, now: number): void {
    if (this.failed) lease.release();
    else this.#engine.lend(this, lease, now);
  }

  /** @internal The pool could not lend a socket in time (AcquireReceiver). */
  onAcquireError(error: Error): void {
    this.over();
    if (!this.failed) failRequest(this.req, this.#engine.wrap(error, this));
  }
}

interface AgentOrigin extends ReapablePool {
  readonly origin: string;
  readonly pool: Pool<AgentSocket>;
  /** Its open sockets, for the holders a queue timeout names. */
  readonly sockets: Set<AgentSocket>;
  /** Requests waiting for or holding a socket: the demand that switches call-site capture on. */
  active: number;
}

/** Where a request goes: its pool key, origin (the gate's per-origin cap) and how to connect. */
interface Route {
  /** `http:` the origin; `https:` node's `https.Agent#getName` (origin and TLS option set). */
  readonly key: string;
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  /** Options of `tls.connect`, or null for plain TCP. */
  readonly tls: tls.ConnectionOptions | null;
  /** Pool name suffix telling apart pools of one origin with different TLS options. */
  readonly tag: string;
}

interface AddRequestOptions {
  readonly host?: string | null;
  readonly hostname?: string | null;
  readonly port?: number | string | null;
}

/**
 * TLS options taken from a request's options (and the agent's `options`) and passed to `tls.connect`:
 * those node's `https.Agent` keys its sockets by (`getName`), and a few that only shape the handshake.
 */
const TLS_KEYS = [
  'ca', 'cert', 'key', 'pfx', 'passphrase', 'ciphers', 'clientCertEngine', 'rejectUnauthorized', 'minVersion', 'maxVersion',
  'secureProtocol', 'crl', 'honorCipherOrder', 'ecdhCurve', 'dhparam', 'secureOptions', 'sessionIdContext', 'sigalgs',
  'privateKeyIdentifier', 'privateKeyEngine', 'checkServerIdentity', 'secureContext',
] as const;

function pickTls(source: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const key of TLS_KEYS) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}

// Routes are computed per request; hashing the TLS part of the key once per distinct option set keeps a
// digest off the hot path.
const tlsTags = new Map<string, string>();
function tlsTag(tlsPart: string): string {
  let tag = tlsTags.get(tlsPart);
  if (tag === undefined) {
    tag = ` tls:${createHash('sha256').update(tlsPart).digest('hex').slice(0, 8)}`;
    if (tlsTags.size < 1024) tlsTags.set(tlsPart, tag);
  }
  return tag;
}

function originOf(protocol: string, host: string, port: number): string {
  return `${protocol}//${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The server name (SNI) of a request, as node computes it: the Host header's host, else the host; none for an IP. */
function serverName(host: string, req: http.ClientRequest): string {
  let name = host;
  const header = req.getHeader('host');
  if (typeof header === 'string' && header.length > 0) {
    name = header.startsWith('[') ? header.slice(1, Math.max(1, header.indexOf(']'))) : header.split(':')[0] ?? header;
  }
  return net.isIP(name) === 0 ? name : '';
}

/** node's `http.Agent` options an agent also takes, so that a migration changes the class and nothing else. */
export interface NodeAgentOptions {
  /** node's name for `connectionsPerOrigin`. */
  readonly maxSockets?: number;
  /** node's name for `maxConnections`. */
  readonly maxTotalSockets?: number;
  /** Always true for a Lifeguard agent: it pools, so it keeps connections alive. `false` is rejected. */
  readonly keepAlive?: boolean;
}

const NODE_NAMES = [['maxSockets', 'connectionsPerOrigin'], ['maxTotalSockets', 'maxConnections']] as const;

/**
 * Translates node's `http.Agent` option names into ours. An agent is mostly made where an `http.Agent`
 * was (`new https.Agent({ keepAlive: true, maxSockets: 50 })` for the AWS SDK), so node's names are taken
 * rather than rejected; a name given twice with two values, and `keepAlive: false`, are still errors.
 */
function nodeAgentOptions(options: (HttpPoolOptions & NodeAgentOptions) | undefined, what: string): HttpPoolOptions {
  // Not an object: left to resolveHttpPoolOptions, which says what was expected.
  if (typeof options !== 'object') return {};
  const source = options as Record<string, unknown>;
  if (!('maxSockets' in source) && !('maxTotalSockets' in source) && !('keepAlive' in source)) return options;
  const keepAlive = source['keepAlive'];
  if (keepAlive !== true && keepAlive !== undefined) {
    throw new InvalidOptionError('keepAlive', `invalid option "keepAlive" for ${what}: expected true or nothing (a Lifeguard agent pools its connections, so it keeps them alive; to close a connection after each response use maxLifetimeMs or a "Connection: close" request header), got ${describe(keepAlive)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (key !== 'keepAlive' && key !== 'maxSockets' && key !== 'maxTotalSockets') out[key] = value;
  }
  for (const [node, ours] of NODE_NAMES) {
    const value = source[node];
    // node's default for both is Infinity: no cap of its own, so the agent keeps ours.
    if (value === undefined || value === Infinity) continue;
    if (source[ours] !== undefined && source[ours] !== value) {
      throw new InvalidOptionError(node, `invalid option "${node}" for ${what}: it is node's name for "${ours}", which is also given with another value (${describe(value)} and ${describe(source[ours])}); give one of them`);
    }
    out[ours] = value;
  }
  return out;
}

/**
 * Resolves translated options; a bad value given under node's name is reported under that name (the
 * caller wrote `maxSockets: -1`, not `connectionsPerOrigin`).
 */
function resolveAgentOptions(options: unknown, given: HttpPoolOptions, what: string): ReturnType<typeof resolveHttpPoolOptions> {
  try {
    return resolveHttpPoolOptions(given, what);
  } catch (error) {
    const renamed = error instanceof InvalidOptionError && typeof options === 'object' && options !== null
      ? NODE_NAMES.find(([node, ours]) => ours === error.option && node in options && !(ours in options)) : undefined;
    if (renamed === undefined) throw error;
    const [node, ours] = renamed;
    throw new InvalidOptionError(node, (error as Error).message.replace(`"${ours}"`, `"${node}" (node's name for "${ours}")`));
  }
}

/** A standalone `http.Agent` with its own caps: `new LifeguardAgent(options)`, for code that makes agents with a function. */
export function createAgent(options?: HttpPoolOptions & NodeAgentOptions): LifeguardAgent {
  return new LifeguardAgent(options);
}

/** A standalone `https.Agent` with its own caps: `new LifeguardHttpsAgent(options)`. */
export function createHttpsAgent(options?: HttpPoolOptions & NodeAgentOptions): LifeguardHttpsAgent {
  return new LifeguardHttpsAgent(options);
}

/**
 * The pooling behind both agents: one Lifeguard pool per route, under the core's connection gate,
 * lending sockets to node's `ClientRequest`s and taking them back on `free`.
 */
class AgentEngine {
  readonly core: HttpCore;
  /** True when this agent made its core (standalone) and so closes it. */
  readonly owner: boolean;
  readonly #agent: http.Agent;
  readonly #secure: boolean;
  /** The agent class's `addRequest`: stack frames above it are the caller's. */
  readonly #marker: (...args: never[]) => unknown;
  readonly #origins = new Map<string, AgentOrigin>();
  /**
   * The last plain-http origin served, by host and port: most agents talk to one host, and comparing two
   * short strings is cheaper than building the origin and hashing it per request. Cleared when reaped.
   */
  readonly #last: { host: string; port: number; entry: AgentOrigin | null } = { host: '', port: -1, entry: null };
  /** Its pools as the core sees them: reaped when idle, their requests watched for body leaks. */
  readonly #pools: AgentPools;

  constructor(agent: http.Agent, secure: boolean, marker: (...args: never[]) => unknown, options: (HttpPoolOptions & NodeAgentOptions) | { readonly core: HttpCore } | undefined, what: string) {
    this.#agent = agent;
    this.#secure = secure;
    this.#marker = marker;
    if (options !== undefined && 'core' in options && options.core instanceof HttpCore) {
      this.core = options.core;
      this.owner = false;
    } else {
      const given = nodeAgentOptions(options as (HttpPoolOptions & NodeAgentOptions) | undefined, what);
      this.core = new HttpCore(resolveAgentOptions(options, given, what), given, null, (report) => {
        emitLeak(agent, report);
      });
      this.owner = true;
    }
    // Holds the origins, not the engine: an agent dropped without close() (a dispatcher's createAgent())
    // can be collected once its pools have been reaped, and its reaper then goes too.
    const origins = this.#origins;
    const last = this.#last;
    const core = this.core;
    const engine = new WeakRef(this);
    const pools: AgentPools = {
      reap(now) {
        reapIdlePools(origins, now, core.o.idleTimeoutMs, () => false, (entry) => {
          core.removePool(entry.pool as Pool<unknown>);
          if (last.entry === entry) last.entry = null;
        });
        if (origins.size === 0 && engine.deref() === undefined) core.removeAgent(pools);
      },
      *tracked() {
        for (const entry of origins.values()) {
          for (const socket of entry.sockets) if (socket.loan?.lent === true) yield socket.loan;
        }
      },
    };
    this.#pools = pools;
    core.addAgent(pools);
  }

  #route(req: http.ClientRequest, options: AddRequestOptions): Route {
    if (!this.#secure) {
      const host = options.host ?? options.hostname ?? 'localhost';
      const port = Number(options.port ?? 80);
      const origin = originOf('http:', host, port);
      return { key: origin, origin, host, port, tls: null, tag: '' };
    }
    // Like node's https.Agent#addRequest: the agent's own options override the request's.
    const merged: Record<string, unknown> = { ...options, ...(this.#agent as unknown as { options: Record<string, unknown> }).options };
    const host = (merged['host'] ?? merged['hostname'] ?? 'localhost') as string;
    const port = Number(merged['port'] ?? 443);
    merged['host'] = host;
    merged['port'] = port;
    const given = merged['servername'];
    const servername = typeof given === 'string' ? given : serverName(host, req);
    merged['servername'] = servername;
    const key = this.#agent.getName(merged);
    // node's key is the http one (host:port:localAddress:family) followed by the TLS options.
    const tlsPart = key.slice(http.Agent.prototype.getName.call(this.#agent, merged).length);
    const tag = /[^:]/.test(tlsPart) ? tlsTag(tlsPart) : '';
    const connectOptions: tls.ConnectionOptions = {
      ...pickTls(merged),
      host,
      port,
      ALPNProtocols: ['http/1.1'],
      ...(servername === '' ? {} : { servername }),
    };
    return { key, origin: originOf('https:', host, port), host, port, tls: connectOptions, tag };
  }

  /** Called by node's `ClientRequest`: lends a pooled socket, asynchronously, then hands it to `req`. */
  addRequest(req: http.ClientRequest, options: AddRequestOptions): void {
    const core = this.core;
    if (core.closed) {
      failRequest(req, core.closedError('send a request through the agent'));
      return;
    }
    let entry: AgentOrigin;
    const last = this.#last;
    if (!this.#secure && last.entry !== null && (options.host ?? options.hostname ?? 'localhost') === last.host && Number(options.port ?? 80) === last.port) {
      entry = last.entry;
    } else {
      const route = this.#route(req, options);
      entry = this.#origins.get(route.key) ?? this.#newEntry(route);
      if (!this.#secure) {
        last.host = route.host;
        last.port = route.port;
        last.entry = entry;
      }
    }
    const now = core.clock.now();
    const request = new AgentRequest(this, entry, req, core.sampler.capture(this.#marker, now, entry.active, core.o.connectionsPerOrigin), now);
    core.counters.requests++;
    // A failed connect fails the oldest waiting request at once (connectFailed), which costs less than an
    // AbortSignal per request.
    entry.pool[kAcquireInto](request, request.acquireOptions, now);
  }

  /** Like node's agent (and undici), a failed connect (refused, TLS error, timeout) fails one waiting request, the oldest. */
  static connectFailed(pool: Pool<AgentSocket>, error: unknown): void {
    for (const request of pool[kWaiting](1)) {
      if (!(request instanceof AgentRequest) || request.failed) continue;
      request.failed = true;
      request.over();
      // Its pool waiter goes too: the pool must not keep reconnecting for a request that has failed.
      request.entry.pool[kWithdraw](request);
      const reason = error instanceof Error ? error : new Error(String(error));
      failRequest(request.req, reason);
      return;
    }
  }

  wrap(error: unknown, request: AgentRequest): Error {
    const code = (error as { code?: unknown }).code;
    const origin = request.origin;
    const what = `${request.method} ${origin}${request.path}`;
    if (code === ErrorCodes.ACQUIRE_TIMEOUT) {
      const entry = request.entry;
      const holders: AgentRequest[] = [];
      for (const socket of entry.sockets) if (socket.loan !== null) holders.push(socket.loan);
      return new QueueTimeoutError(`${what}: no agent connection to ${origin} became free in time (${(error as Error).message.split('\n')[0] ?? ''})\n${describeHolders(this.core, origin, entry.pool.stats(), holders)}`, { cause: error });
    }
    if (code === ErrorCodes.QUEUE_FULL) return new QueueFullError(`${what}: rejected at once, the agent queue of ${origin} is full (maxWaiting=${this.core.o.maxWaiting})`, { cause: error });
    if (code === ErrorCodes.POOL_CLOSED) return new HttpClosedError(`${what}: the agent was closed`, { cause: error });
    return error instanceof Error ? error : new Error(String(error));
  }

  lend(request: AgentRequest, lease: Lease<AgentSocket>, now: number): void {
    const conn = lease.resource;
    if (!conn.usable(now)) {
      lease.destroy(conn.gone ?? new Error('agent connection no longer usable'));
      request.entry.pool[kAcquireInto](request, request.acquireOptions);
      return;
    }
    conn.idle = false;
    conn.loan = request;
    request.lease = lease;
    request.socket = conn.socket;
    request.lentAt = now;
    request.lent = true;
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
    request.over();
    request.lent = false;
    const core = this.core;
    const lease = request.lease;
    request.lease = null;
    request.socket = null;
    if (lease?.active !== true) return;
    // null until the response headers arrive (node's ClientRequest starts with `res = null`).
    const res = (request.req as { res?: http.IncomingMessage | null }).res;
    // The lend's reading of the clock: a keep-alive hint counted from there ends early, never late, and
    // the pool reads the clock again when it lends the socket next.
    const now = request.lentAt;
    // From rawHeaders: node builds `res.headers` lazily, and building it for every response (when the
    // caller never reads it) is a large share of the agent's garbage.
    if (res != null) readConnectionHeaderStrings(conn, res.rawHeaders, core.o.keepAliveSafetyMarginMs, now);
    if (!destroy && conn.usable(now) && request.req.shouldKeepAlive) {
      // Fair under a shared total cap (see PooledRequest's end of lease).
      if (core.gate.waitingAnywhere) {
        const mine = oldestAgentRequest(request.entry.pool);
        if (mine !== undefined && core.gate.olderWaiterElsewhere(conn.origin, mine)) {
          lease.destroy(new Error('agent socket closed to free its slot for an older request waiting elsewhere under the shared cap'));
          return;
        }
      }
      conn.socket.unref();
      conn.giveBack(lease, request.entry.pool);
    } else {
      lease.destroy(cause ?? conn.gone ?? new Error('agent connection not reusable'));
    }
  }

  #newEntry(route: Route): AgentOrigin {
    const { origin, host, port } = route;
    const core = this.core;
    const o = core.o;
    const gate = core.gate;
    const sockets = new Set<AgentSocket>();
    const budgeted = budgetOption(o, origin).budget !== undefined;
    const pool: Pool<AgentSocket> = new Pool<AgentSocket>({
      name: `${o.name}-agent ${origin}${route.tag}`,
      factory: {
        create: async (context) => {
          const made = lossDeferred(context);
          // Only while a request needs this socket (see connectionFactory).
          await gate.acquire(origin, AbortSignal.any([context.signal, context.unwanted]), oldestAgentRequest(pool) ?? core.clock.now());
          try {
            const socket = await connect(host, port, route.tls, o.connectTimeoutMs, context.signal);
            const conn = new AgentSocket(origin, socket, gate, context.invalidate, core.clock.now());
            sockets.add(conn);
            conn.closeGracefully = budgeted;
            conn.now = () => core.clock.now();
            conn.marginMs = o.keepAliveSafetyMarginMs;
            made.made = conn;
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
            if (!context.signal.aborted) AgentEngine.connectFailed(pool, error);
            throw error;
          }
        },
        destroy: (conn) => {
          sockets.delete(conn);
          return conn.dispose();
        },
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
      ...budgetOption(o, origin),
    });
    core.addPool(pool as Pool<unknown>);
    const entry: AgentOrigin = { origin, pool, sockets, active: 0, emptySince: NaN, acquiredSeen: 0 };
    this.#origins.set(route.key, entry);
    return entry;
  }

  stats(): HttpStats {
    return statsOf(this.core, [...this.#origins.values()].map((e) => e.pool.stats()));
  }

  /** The Lifeguard pools of this agent, one per origin. */
  pools(): Pool<AgentSocket>[] {
    return [...this.#origins.values()].map((e) => e.pool);
  }

  async close(): Promise<void> {
    this.core.removeAgent(this.#pools);
    if (this.owner) {
      await this.core.close();
      return;
    }
    await Promise.all(this.pools().map((p) => p.close({ timeoutMs: this.core.o.closeTimeoutMs })));
  }

  destroy(): void {
    this.core.removeAgent(this.#pools);
    if (this.owner) void this.core.destroy(new Error('agent destroyed'));
    else for (const pool of this.pools()) void pool.destroy(new Error('agent destroyed'));
  }
}

/**
 * An `http.Agent` for libraries that take `agent`/`httpAgent` (axios, got, the AWS SDK's Node handler).
 * Its sockets come from Lifeguard pools, one per origin, under the same connection gate (per-origin and
 * total caps) as the dispatcher it was made from, and with the same hygiene: keep-alive reuse, idle and
 * lifetime eviction, eviction of idle sockets the server closed, and response bodies that hold their
 * socket until consumed (reported when left unconsumed). Plain `http:` origins; for `https:` use
 * {@link LifeguardHttpsAgent} (node's client requires `agent.protocol` to match the request's).
 */
export class LifeguardAgent extends http.Agent {
  readonly #engine: AgentEngine;

  /** A standalone agent with its own caps; `dispatcher.createAgent()` makes one that shares a dispatcher's. */
  constructor(options?: (HttpPoolOptions & NodeAgentOptions) | { readonly core: HttpCore }) {
    super({ keepAlive: true });
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    this.#engine = new AgentEngine(this, false, LifeguardAgent.prototype.addRequest, options, 'LifeguardAgent');
  }

  /** Called by node's `ClientRequest`: lends a pooled socket, asynchronously, then hands it to `req`. */
  addRequest(req: http.ClientRequest, options: AddRequestOptions): void {
    this.#engine.addRequest(req, options);
  }

  stats(): HttpStats {
    return this.#engine.stats();
  }

  /** The Lifeguard pools of this agent, one per origin. */
  pools(): Pool<AgentSocket>[] {
    return this.#engine.pools();
  }

  /** Closes the agent's pools (waiting up to `closeTimeoutMs` for requests in flight); a standalone agent closes its caps too. */
  close(): Promise<void> {
    return this.#engine.close();
  }

  /** `http.Agent#destroy`: closes every socket at once. */
  override destroy(): void {
    this.#engine.destroy();
    super.destroy();
  }
}

/**
 * The `https:` twin of {@link LifeguardAgent}: an `https.Agent` (so `agent.protocol` is `'https:'`, as
 * node's `https.request` requires, and `instanceof https.Agent` holds for libraries that check it) with
 * the same pooling, caps and hygiene. Sockets are `tls.connect`ed with the request's TLS options merged
 * with the agent's `options` (the dispatcher's `tls` option; the agent's win, as in node), and pooled per
 * origin and TLS option set, keyed like node's `https.Agent#getName`: requests with different `ca`,
 * `rejectUnauthorized`, `servername`, ... never share a socket. They share the origin's cap at the gate.
 */
export class LifeguardHttpsAgent extends https.Agent {
  readonly #engine: AgentEngine;

  /** A standalone agent with its own caps; `dispatcher.createHttpsAgent()` makes one that shares a dispatcher's. */
  constructor(options?: (HttpPoolOptions & NodeAgentOptions) | { readonly core: HttpCore }) {
    super({ keepAlive: true });
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    this.#engine = new AgentEngine(this, true, LifeguardHttpsAgent.prototype.addRequest, options, 'LifeguardHttpsAgent');
    // The TLS defaults every request of this agent gets, where node's https.Agent keeps them.
    const defaults = this.#engine.core.o.tls;
    Object.assign(this.options, pickTls(defaults), typeof defaults['servername'] === 'string' ? { servername: defaults['servername'] } : {});
  }

  /** Called by node's `ClientRequest`: lends a pooled TLS socket, asynchronously, then hands it to `req`. */
  addRequest(req: http.ClientRequest, options: AddRequestOptions): void {
    this.#engine.addRequest(req, options);
  }

  stats(): HttpStats {
    return this.#engine.stats();
  }

  /** The Lifeguard pools of this agent, one per origin and TLS option set. */
  pools(): Pool<AgentSocket>[] {
    return this.#engine.pools();
  }

  /** Closes the agent's pools (waiting up to `closeTimeoutMs` for requests in flight); a standalone agent closes its caps too. */
  close(): Promise<void> {
    return this.#engine.close();
  }

  /** `https.Agent#destroy`: closes every socket at once. */
  override destroy(): void {
    this.#engine.destroy();
    super.destroy();
  }
}

/** When the oldest request waiting in an agent pool arrived, or undefined. */
function oldestAgentRequest(pool: Pool<AgentSocket>): number | undefined {
  const first = pool[kWaiting](1)[0];
  return first instanceof AgentRequest ? first.startedAt : undefined;
}

/** Fails a request that never got a socket: node's own agent does it the same way (`onSocket(socket, err)`). */
function failRequest(req: http.ClientRequest, error: Error): void {
  const onSocket = req.onSocket.bind(req) as (socket: net.Socket | undefined, err: Error) => void;
  onSocket(undefined, error);
}

/**
 * Opens a TCP socket, or a TLS one when `tlsOptions` is given: resolves once connected (TLS: once the
 * handshake is done), within `timeoutMs` for the whole of it, or when `signal` aborts.
 */
function connect(host: string, port: number, tlsOptions: tls.ConnectionOptions | null, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = tlsOptions === null
      ? net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 })
      : tls.connect(tlsOptions);
    const what = tlsOptions === null ? 'connect' : 'TLS connect (TCP and handshake)';
    const timer = setTimeout(() => { fail(new Error(`${what} to ${host}:${port} timed out after ${timeoutMs} ms (connectTimeoutMs)`)); }, timeoutMs);
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
    socket.once(tlsOptions === null ? 'connect' : 'secureConnect', () => {
      cleanup();
      if (tlsOptions !== null) {
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 60_000);
      }
      resolve(socket);
    });
  });
}
