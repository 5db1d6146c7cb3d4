import { systemClock, type Clock } from '../internal/clock.js';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import { keepTickObjectShape } from '../internal/tick-shape.js';
import { Pool, kWaiting } from '../pool/pool.js';
import type { PoolStats } from '../pool/stats.js';
import { connectionFactory, originParts, type HttpConnection, type OriginParts } from './connection.js';
import { BodyAbandonedError, HttpClosedError, HttpErrorCodes, InvalidOriginError } from './errors.js';
import { ConnectionGate } from './gate.js';
import type { HttpPoolOptions, ResolvedHttpPoolOptions } from './options.js';
import type { AcquireSite } from '../leak/site.js';
import type { Budget } from '../budget/index.js';
import { requestOf, type PooledRequest } from './request.js';
import { SiteSampler } from './site.js';

/** The connections of one origin. Each points at the request it runs; the pool's queue lists those waiting. */
export interface OriginEntry extends ReapablePool {
  readonly parts: OriginParts;
  readonly pool: Pool<HttpConnection>;
  /** Open connections (added when connected, removed when the pool destroys them). */
  readonly connections: Set<HttpConnection>;
  /** Requests dispatched to this origin and not finished (waiting, running, or with a body pending). */
  active: number;
}

/** An origin's pool as the reaper sees it (the dispatcher's and the agent's). */
export interface ReapablePool {
  readonly pool: { stats(): PoolStats; close(): Promise<unknown> };
  /** When the reaper first saw the pool with no connection, create or waiter (NaN: it was busy). */
  emptySince: number;
  /** The pool's `acquired` count at the reaper's last look: a change means it was used in between. */
  acquiredSeen: number;
}

/**
 * Closes and forgets the pools of `origins` that had no connection, no create and no waiter for
 * `idleMs`, so that a process that talks to many hosts over time (incident 1's registry) does not keep a
 * pool, its housekeeping and its metrics for each host forever. `keep` vetoes (a request sleeping before
 * a retry still refers to its pool); `reaped` is told of each pool closed. Every key of a pool goes.
 */
export function reapIdlePools<E extends ReapablePool>(origins: Map<string, E>, now: number, idleMs: number, keep: (entry: E) => boolean, reaped: (entry: E) => void): void {
  const verdicts = new Map<E, boolean>();
  for (const [key, entry] of origins) {
    let reap = verdicts.get(entry);
    if (reap === undefined) {
      const s = entry.pool.stats();
      // Used since the last look counts as busy, even when every connection it used is gone again
      // (`Connection: close`, or keep-alive hints too short to reuse): such a pool is in use.
      const used = s.acquired !== entry.acquiredSeen;
      entry.acquiredSeen = s.acquired;
      if (used || s.size > 0 || s.creating > 0 || s.pending > 0 || keep(entry)) {
        entry.emptySince = NaN;
        reap = false;
      } else {
        if (Number.isNaN(entry.emptySince)) entry.emptySince = now;
        reap = now - entry.emptySince >= idleMs;
      }
      verdicts.set(entry, reap);
      if (reap) {
        reaped(entry);
        void entry.pool.close();
      }
    }
    if (reap) origins.delete(key);
  }
}

/** An agent's pools as its core sees them (see {@link HttpCore.addAgent}). */
export interface AgentPools {
  /** Closes the pools of origins idle for idleTimeoutMs. */
  reap(now: number): void;
  /**
   * The agent's requests whose socket is lent, found through its sockets as the dispatcher's are through
   * its connections. Not a set of requests: a per-request add and delete on a long-lived Set kept every
   * request's ClientRequest and response alive across young-generation collections (about 1 KB a request
   * promoted to the old generation, ten times node's own agent), and the collections that cost made the
   * agent 10% slower than node's http.Agent.
   */
  tracked(): Iterable<TrackedResponse>;
}

/** A response whose body the caller may leave unconsumed: what the body-leak check watches. */
export interface TrackedResponse {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly site: AcquireSite | null;
  /** True from the response headers until the body is consumed or cancelled. */
  readonly bodyPending: boolean;
  /**
   * When the headers reached the caller; NaN while unknown (the agent's, whose client has no headers hook):
   * the body-leak check then stamps the first time it sees the body pending, at most one check late.
   */
  headersAt: number;
  /** Bytes read so far from the response's socket (it grows only while the caller consumes the body). */
  readonly bytesRead: number;
  /** When the body-leak check last saw the caller consume data (NaN: not yet looked); the leak clock runs from here. */
  readAt: number;
  /** {@link bytesRead} at that moment. */
  bytesSeen: number;
  leakReported: boolean;
  /** Cancels the body and destroys its connection. */
  abandon(error: Error): void;
}

/** A response body left unconsumed: `held` past `bodyLeakWarnAfterMs`, `abandoned` (cancelled) past `bodyAbandonAfterMs`. */
export interface BodyLeakReport {
  readonly kind: 'held' | 'abandoned';
  readonly code: 'LG_HTTP_BODY_LEAK' | 'LG_HTTP_BODY_ABANDONED';
  /** Name of the dispatcher (or scope). */
  readonly dispatcher: string;
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  /** Milliseconds since the response headers were handed over. */
  readonly heldMs: number;
  /** First frame of the code that made the request (`file:line:col`), or null when not captured. */
  readonly site: string | null;
  readonly stack: string | null;
  readonly message: string;
}

/** Counters of a dispatcher, agent or scope. */
export interface HttpCounters {
  requests: number;
  /** Retries under the retry policy (statuses and connection errors). */
  retries: number;
  /** Requests re-sent once on a fresh connection after a reused one failed before any response byte. */
  transparentRetries: number;
  bodyLeaks: number;
  bodiesAbandoned: number;
}

/** A snapshot of a dispatcher (or scope, or agent): connections, queues and counters. */
export interface HttpStats extends HttpCounters {
  readonly name: string;
  /** Open connections counted against this dispatcher's caps (its scopes' and agents' included). */
  readonly connections: number;
  readonly maxConnections: number;
  readonly connectionsPerOrigin: number;
  /** Response bodies handed to the caller and not yet consumed. */
  readonly pendingBodies: number;
  /** One entry per origin pool. */
  readonly origins: readonly PoolStats[];
  readonly closed: boolean;
}

const OPEN = 0;
const CLOSING = 1;

/**
 * Everything a dispatcher, its agents and its scopes share: the options, the connection gate (the caps),
 * one Lifeguard pool of connections per origin, the requests whose bodies are pending, and the body-leak
 * check on the process-wide housekeeper.
 */
export class HttpCore {
  readonly o: ResolvedHttpPoolOptions;
  /** The options as given, inherited by scopes. */
  readonly given: HttpPoolOptions;
  readonly clock: Clock;
  readonly gate: ConnectionGate;
  readonly sampler: SiteSampler;
  /** How long a request may wait and retry in all: the retry policy's deadline, or the queue timeout. */
  readonly deadlineMs: number;
  /** Requests sleeping before a retry. */
  readonly backingOff = new Set<PooledRequest>();
  readonly counters: HttpCounters = { requests: 0, retries: 0, transparentRetries: 0, bodyLeaks: 0, bodiesAbandoned: 0 };
  readonly #origins = new Map<string, OriginEntry>();
  #lastKey: string | null = null;
  #lastEntry: OriginEntry | null = null;
  /** Other pools closed with this core (the agent's). */
  readonly #extraPools = new Set<Pool<unknown>>();
  readonly #children = new Set<HttpCore>();
  readonly #parent: HttpCore | null;
  readonly #onLeak: (report: BodyLeakReport) => void;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  /** The agents' pools: reaped with this core's, and their requests watched by the body-leak check. */
  readonly #agents = new Set<AgentPools>();
  #state = OPEN;
  #closing: Promise<void> | null = null;
  #destroyCause: unknown = undefined;

  constructor(o: ResolvedHttpPoolOptions, given: HttpPoolOptions, parent: HttpCore | null, onLeak: (report: BodyLeakReport) => void) {
    keepTickObjectShape(); // once per process: where it was measured (HTTP clients idle; see tick-shape.ts)
    this.o = o;
    this.given = given;
    this.clock = o.clock ?? systemClock;
    this.deadlineMs = o.retry === null ? o.acquireTimeoutMs : o.retry.deadlineMs;
    this.#parent = parent;
    this.gate = new ConnectionGate(o.connectionsPerOrigin, o.maxConnections, parent?.gate ?? null);
    this.sampler = new SiteSampler(o.leakDetection, o.leakSampleRate);
    this.#onLeak = onLeak;
    if (parent !== null) parent.#children.add(this);
    this.#housekeeper = Housekeeper.for(this.clock);
    const bodyChecks = o.bodyLeakWarnAfterMs > 0 || o.bodyAbandonAfterMs > 0;
    const periods = [o.bodyLeakWarnAfterMs, o.bodyAbandonAfterMs, o.idleTimeoutMs].filter((t) => t > 0);
    this.#task = {
      periodMs: Math.max(10, Math.min(1000, Math.floor(Math.min(...periods) / 4))),
      run: (now) => {
        if (bodyChecks) this.#checkBodies(now);
        if (this.closed) return;
        this.#reap(now);
        for (const agent of this.#agents) agent.reap(now);
      },
    };
    this.#housekeeper.register(this.#task);
  }

  get closed(): boolean {
    return this.#state !== OPEN;
  }

  /** The pool entry of `origin`, made on first use. Throws `LG_HTTP_INVALID_ORIGIN`. */
  entry(origin: unknown): OriginEntry {
    // Most dispatchers talk to one origin: a string comparison is cheaper than hashing a fresh string.
    if (origin === this.#lastKey && this.#lastEntry !== null) return this.#lastEntry;
    const key = typeof origin === 'string' ? origin : origin instanceof URL ? origin.origin : undefined;
    if (key !== undefined) {
      const found = this.#origins.get(key);
      if (found !== undefined) {
        if (typeof origin === 'string') this.#remember(origin, found);
        return found;
      }
    }
    let parts: OriginParts;
    try {
      parts = originParts(key ?? '');
    } catch {
      throw new InvalidOriginError(`invalid request origin: expected an http(s) URL string or URL, got ${key === undefined ? typeof origin : JSON.stringify(key)}`);
    }
    if (parts.protocol !== 'http:' && parts.protocol !== 'https:') {
      throw new InvalidOriginError(`invalid request origin ${JSON.stringify(key)}: only http: and https: are supported`);
    }
    let entry = this.#origins.get(parts.origin);
    if (entry === undefined) {
      const connections = new Set<HttpConnection>();
      const pool: Pool<HttpConnection> = new Pool<HttpConnection>({
        name: `${this.o.name} ${parts.origin}`,
        factory: connectionFactory(parts, this.gate, this.o, this.clock, {
          // Like undici, each failed connect fails (or retries) one waiting request, oldest first.
          connectFailed: (error) => {
            const first = pool[kWaiting](1)[0];
            if (first !== undefined) requestOf(first)?.connectFailed(error);
          },
          opened: (connection) => {
            connections.add(connection);
          },
          arrivedAt: () => oldestWaiting(pool) ?? this.clock.now(),
          closed: (connection) => {
            connections.delete(connection);
          },
        }),
        max: this.o.connectionsPerOrigin,
        maxWaiting: this.o.maxWaiting,
        acquireTimeoutMs: this.o.acquireTimeoutMs,
        // The connect has its own timeout; the wait for a slot at the gate is bounded by the waiters' deadlines.
        createTimeoutMs: Infinity,
        maxConcurrentCreates: Math.min(this.o.connectionsPerOrigin, 8),
        idleTimeoutMs: this.o.idleTimeoutMs,
        maxLifetimeMs: this.o.maxLifetimeMs,
        maxLifetimeJitterMs: this.o.maxLifetimeJitterMs,
        // Checked on borrow after this much idleness: the keep-alive deadline and a socket closed under us.
        validateAfterIdleMs: Math.min(1000, this.o.keepAliveSafetyMarginMs),
        // Leases are tracked per request here, with the request's own call site (see body leaks).
        leakDetection: 'off',
        ...(this.o.clock === undefined ? {} : { clock: this.o.clock }),
        ...budgetOption(this.o, parts.origin),
      });
      entry = { parts, pool, connections, active: 0, emptySince: NaN, acquiredSeen: 0 };
      this.#origins.set(parts.origin, entry);
    }
    if (key !== undefined) this.#origins.set(key, entry);
    if (typeof origin === 'string') this.#remember(origin, entry);
    return entry;
  }

  #remember(key: string, entry: OriginEntry): void {
    this.#lastKey = key;
    this.#lastEntry = entry;
  }

  /** The dispatcher's requests holding a connection (running, or with a body not yet consumed). */
  *#running(): Generator<PooledRequest> {
    for (const entry of this.entries()) {
      for (const connection of entry.connections) if (connection.request !== null) yield connection.request;
    }
  }

  /** Every request holding a connection, the dispatcher's and the agents': what the body-leak check watches. */
  *tracked(): Generator<TrackedResponse> {
    yield* this.#running();
    for (const agent of this.#agents) yield* agent.tracked();
  }

  /** The origin pools (one per origin), for stats, the doctor and tests. */
  pools(): Pool<HttpConnection>[] {
    return [...new Set(this.#origins.values())].map((e) => e.pool);
  }

  entries(): OriginEntry[] {
    return [...new Set(this.#origins.values())];
  }

  /** An agent's pool, closed with this core (until {@link removePool}). */
  addPool(pool: Pool<unknown>): void {
    this.#extraPools.add(pool);
  }

  removePool(pool: Pool<unknown>): void {
    this.#extraPools.delete(pool);
  }

  /** Reaps an agent's idle pools on this core's schedule and watches its requests' bodies, until the core closes (or {@link removeAgent}). */
  addAgent(agent: AgentPools): void {
    this.#agents.add(agent);
  }

  removeAgent(agent: AgentPools): void {
    this.#agents.delete(agent);
  }

  #reap(now: number): void {
    reapIdlePools(this.#origins, now, this.o.idleTimeoutMs, (entry) => {
      for (const request of this.backingOff) if (request.origin === entry.parts.origin) return true;
      return false;
    }, (entry) => {
      if (this.#lastEntry === entry) {
        this.#lastEntry = null;
        this.#lastKey = null;
      }
    });
  }

  closedError(action: string): HttpClosedError {
    const how = this.#destroyCause === undefined ? 'closed' : 'destroyed';
    return new HttpClosedError(`cannot ${action}: dispatcher "${this.o.name}" was ${how}`, this.#destroyCause === undefined ? undefined : { cause: this.#destroyCause });
  }

  /** Who holds the connections of `entry`, oldest first: for timeout messages. */
  holders(entry: OriginEntry): string {
    const active: PooledRequest[] = [];
    for (const connection of entry.connections) if (connection.request !== null) active.push(connection.request);
    return describeHolders(this, entry.parts.origin, entry.pool.stats(), active);
  }

  #checkBodies(now: number): void {
    const o = this.o;
    for (const request of this.tracked()) {
      if (!request.bodyPending) continue;
      if (Number.isNaN(request.headersAt)) request.headersAt = now;
      // The clock runs from the last time the caller consumed data, not from the headers: a body read
      // slowly but steadily (a long download) is never a leak. The socket's byte count moves only while
      // the caller reads (both clients stop reading the socket when the body's buffer is full), and
      // reading it here costs the hot path nothing.
      const bytes = request.bytesRead;
      if (Number.isNaN(request.readAt) || request.readAt < request.headersAt) {
        request.readAt = request.headersAt;
        request.bytesSeen = bytes;
      } else if (bytes !== request.bytesSeen) {
        request.bytesSeen = bytes;
        request.readAt = now;
      }
      const held = now - request.readAt;
      if (o.bodyAbandonAfterMs > 0 && held >= o.bodyAbandonAfterMs) {
        this.counters.bodiesAbandoned++;
        const report = this.#report('abandoned', request, held);
        request.abandon(new BodyAbandonedError(report.message));
      } else if (o.bodyLeakWarnAfterMs > 0 && held >= o.bodyLeakWarnAfterMs && !request.leakReported) {
        request.leakReported = true;
        this.counters.bodyLeaks++;
        this.#report('held', request, held);
      }
    }
  }

  #report(kind: BodyLeakReport['kind'], request: TrackedResponse, heldMs: number): BodyLeakReport {
    this.sampler.escalate(this.clock.now());
    const what = kind === 'held'
      ? `unconsumed for ${Math.round(heldMs)} ms (bodyLeakWarnAfterMs=${this.o.bodyLeakWarnAfterMs}); it holds a connection until it is read or cancelled`
      : `unconsumed for ${Math.round(heldMs)} ms (bodyAbandonAfterMs=${this.o.bodyAbandonAfterMs}): cancelled, its connection destroyed`;
    const site = request.site?.frame ?? null;
    const report: BodyLeakReport = {
      kind,
      code: kind === 'held' ? HttpErrorCodes.BODY_LEAK : HttpErrorCodes.BODY_ABANDONED,
      dispatcher: this.o.name,
      origin: request.origin,
      method: request.method,
      path: request.path,
      heldMs,
      site,
      stack: request.site?.stack ?? null,
      message: `response body of ${request.method} ${request.origin}${request.path} ${what}, requested at ${site ?? '(site not sampled)'}`,
    };
    this.#onLeak(report);
    return report;
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#state = CLOSING;
    this.#closing = this.#shutdown(false);
    return this.#closing;
  }

  destroy(error: unknown): Promise<void> {
    this.#destroyCause = error ?? new Error('dispatcher destroyed');
    if (this.#closing !== null) {
      // A graceful close may be waiting on requests: cut it short.
      for (const pool of this.#allPools()) void pool.destroy(this.#destroyCause);
      for (const child of this.#children) void child.destroy(this.#destroyCause);
      return this.#closing;
    }
    this.#state = CLOSING;
    this.#closing = this.#shutdown(true);
    return this.#closing;
  }

  *#allPools(): Generator<Pool<unknown>> {
    for (const entry of this.entries()) yield entry.pool as Pool<unknown>;
    yield* this.#extraPools;
  }

  async #shutdown(hard: boolean): Promise<void> {
    const error = this.closedError('send a request');
    for (const request of [...this.backingOff]) request.cancel(error);
    for (const entry of this.entries()) {
      for (const receiver of entry.pool[kWaiting]()) requestOf(receiver)?.cancel(error);
    }
    await Promise.all([...this.#children].map((child) => (hard ? child.destroy(this.#destroyCause) : child.close())));
    const pools = [...this.#allPools()];
    await Promise.all(pools.map((pool) => (hard ? pool.destroy(this.#destroyCause) : pool.close({ timeoutMs: this.o.closeTimeoutMs }))));
    this.gate.close(error);
    this.#housekeeper.unregister(this.#task);
    if (this.#parent !== null) this.#parent.#children.delete(this);
  }
}

/** A request holding a connection, as a timeout message names it. */
export interface Holder extends TrackedResponse {
  readonly startedAt: number;
}

/**
 * The state of an origin's pool and who holds its connections: the five oldest holders (method, path,
 * age, how long their body has gone unread, call site) and the holders grouped by call site, the most
 * frequent first. Shared by the dispatcher's and the agent's queue timeouts.
 */
export function describeHolders(core: HttpCore, origin: string, s: PoolStats, holders: Holder[]): string {
  const now = core.clock.now();
  const o = core.o;
  const lines = [`  ${origin}: ${s.inUse} connections in use, ${s.idle} idle, ${s.pending} waiting (connectionsPerOrigin=${o.connectionsPerOrigin}; ${core.gate.total} of maxConnections=${o.maxConnections} open)`];
  holders.sort((a, b) => a.startedAt - b.startedAt);
  for (const r of holders.slice(0, 5)) {
    const since = Number.isNaN(r.headersAt) ? NaN : Number.isNaN(r.readAt) ? r.headersAt : Math.max(r.readAt, r.headersAt);
    const body = r.bodyPending && !Number.isNaN(since) ? `, body unconsumed for ${Math.round(now - since)} ms` : r.bodyPending ? ', body unconsumed' : '';
    lines.push(`    ${r.method} ${r.path} running for ${Math.round(now - r.startedAt)} ms${body}, requested at ${r.site?.frame ?? '(site not sampled)'}`);
  }
  const bySite = new Map<string, number>();
  for (const r of holders) {
    const site = r.site?.frame ?? '(site not sampled)';
    bySite.set(site, (bySite.get(site) ?? 0) + 1);
  }
  if (bySite.size > 0) lines.push(`  connections held by call site: ${[...bySite].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([site, n]) => `${site} x${n}`).join(', ')}`);
  return lines.join('\n') + budgetLine(o, origin);
}

/** When the oldest request waiting in `pool` arrived (a retry keeps its first arrival), or undefined. */
export function oldestWaiting(pool: Pool<HttpConnection>): number | undefined {
  const first = pool[kWaiting](1)[0];
  return first === undefined ? undefined : requestOf(first)?.startedAt;
}

/** The pool's `budget` option for `origin`: the pool takes a permit before each connect and gives it back once the socket is closed. */
export function budgetOption(o: ResolvedHttpPoolOptions, origin: string): { budget?: Budget } {
  // The agent names origins with their port (`http://host:80`): budgets are keyed by `URL#origin`.
  const budget = o.budgetFor?.(new URL(origin).origin);
  return budget === undefined ? {} : { budget };
}

/** One line on an origin's budget for timeout messages (empty without one). */
export function budgetLine(o: ResolvedHttpPoolOptions, origin: string): string {
  if (o.budgetFor === null) return '';
  const budget = o.budgetFor(new URL(origin).origin);
  if (budget === undefined) return '';
  const b = budget.stats();
  return `\n  budget "${b.key}": this process holds ${b.held} of limit=${b.limit} permits, ${b.waiting} waiting here for one (a wait for a permit counts against the deadline)`;
}

export function statsOf(core: HttpCore, extra: readonly PoolStats[] = []): HttpStats {
  let pendingBodies = 0;
  for (const request of core.tracked()) if (request.bodyPending) pendingBodies++;
  return {
    name: core.o.name,
    connections: core.gate.total,
    maxConnections: core.o.maxConnections,
    connectionsPerOrigin: core.o.connectionsPerOrigin,
    pendingBodies,
    origins: [...core.pools().map((p) => p.stats()), ...extra],
    closed: core.closed,
    ...core.counters,
  };
}

/** Reports a leak on `emitter`, or as one structured stderr line when nobody listens: a leak is never silent. */
export function emitLeak(emitter: { listenerCount(event: string): number; emit(event: string, payload: unknown): boolean }, report: BodyLeakReport): void {
  if (emitter.listenerCount('leak') > 0) {
    emitter.emit('leak', report);
    return;
  }
  process.stderr.write(`${JSON.stringify({ level: 'warn', code: report.code, msg: report.message, origin: report.origin, method: report.method, path: report.path, heldMs: Math.round(report.heldMs), site: report.site, stack: report.stack })}\n`);
}

