import type { Socket } from 'node:net';
import { Client, buildConnector } from 'undici';
import type { Clock } from '../internal/clock.js';
import type { CreateContext, Factory } from '../pool/options.js';
import { kReading } from '../pool/pool.js';
import { ConnectionGoneError } from './errors.js';
import type { Adopter, ConnectionGate, GatedConnection } from './gate.js';
import type { ResolvedHttpPoolOptions } from './options.js';
import type { PooledRequest } from './request.js';

let connectionSeq = 0;

/** Longest wait for the server's FIN after ours when an idle connection is closed. */
const GRACEFUL_CLOSE_MS = 1000;

/** `http://host:port` split the way undici's connector wants it. */
export interface OriginParts {
  readonly origin: string;
  readonly protocol: string;
  readonly hostname: string;
  readonly host: string;
  readonly port: string;
}

export function originParts(origin: string): OriginParts {
  const url = new URL(origin);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { origin: url.origin, protocol: url.protocol, hostname, host: url.host, port: url.port };
}

/** Opens one TCP (or TLS) socket to `parts`, bounded by `connectTimeoutMs` and `signal`. */
export function connectSocket(connector: buildConnector.connector, parts: OriginParts, signal: AbortSignal): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    connector({ hostname: parts.hostname, host: parts.host, protocol: parts.protocol, port: parts.port, localAddress: null }, (error, socket) => {
      signal.removeEventListener('abort', onAbort);
      if (settled) {
        // Aborted while connecting (pool closed, create timed out): the late socket must not leak.
        socket?.destroy();
        return;
      }
      settled = true;
      if (error !== null) reject(error);
      else resolve(socket);
    });
  });
}

/**
 * A pooled socket and what the pool needs to know about it: its slot at the gate, whether it is idle,
 * what the server said about reusing it, and whether it broke. Shared by the dispatcher's connections
 * and the agent's sockets.
 */
export class PooledSocket implements GatedConnection {
  readonly id = ++connectionSeq;
  readonly origin: string;
  readonly socket: Socket;
  /** A new connection counts as idle until lent: the pool may keep it when its waiter has gone. */
  idle = true;
  /**
   * True while it sits idle in its pool (given back and not lent since): only then may the gate hand it
   * to another pool from there (a new connection on its way to its pool, or one moving, is not).
   */
  parked = false;
  /** Handed to another pool and not yet lent or parked there (see ConnectionGate.handOver). */
  moving = false;
  idleSince: number;
  /** Requests started on this connection. */
  requests = 0;
  /** The server's keep-alive hint, minus the safety margin, as a clock time (Infinity: no hint). */
  keepAliveUntil = Infinity;
  /** False once the server said `Connection: close` or a keep-alive timeout too short to reuse it. */
  reusable = true;
  /** Why the connection is unusable, once it is. */
  gone: Error | null = null;
  /** The socket was handed to the user by an upgrade (CONNECT, WebSocket): it is no longer ours to close. */
  detached = false;
  evicted = false;
  /**
   * Close it idle with our FIN and the server's before freeing its slot (see dispose()): set when a
   * budget pays for it, as a remote that counts connections must have counted it out before its permit
   * can go to another process. Without a budget the slot goes back at once.
   */
  closeGracefully = false;
  /** The pool's clock, for the idle time at which the server closes; set by whoever makes the connection. */
  now: (() => number) | null = null;
  /** The keep-alive safety margin (keepAliveSafetyMarginMs), also applied to learned idle closes. */
  marginMs = 1000;
  /** Rebound when the gate hands the connection to another pool (see {@link rehome}). */
  #gate: ConnectionGate;
  #invalidate: (reason: unknown) => void;
  #disposed: Promise<void> | null = null;
  /** Destroys it when its lost permit is gone, if its response is still running then (see permitLost). */
  #permitTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(origin: string, socket: Socket, gate: ConnectionGate, invalidate: (reason: unknown) => void, now: number) {
    this.origin = origin;
    this.idleSince = now;
    this.socket = socket;
    this.#gate = gate;
    this.#invalidate = invalidate;
    // An idle pooled socket must not keep the process alive; whoever uses it refs it meanwhile.
    socket.unref();
    const broken = (reason: Error): void => {
      this.#broken(reason);
    };
    socket.on('end', () => {
      // A FIN on an idle socket tells when this server closes idle connections, hint or not.
      if (this.idle && this.gone === null && this.requests > 0 && this.now !== null) this.#gate.learnIdleClose(this.origin, this.now() - this.idleSince);
      broken(new Error(`the server half-closed connection #${this.id} to ${this.origin} (FIN received)`));
    });
    socket.on('close', () => { broken(new Error(`connection #${this.id} to ${this.origin} closed`)); });
    socket.on('error', broken);
    gate.track(this);
  }

  /**
   * Gives it back to its pool through `lease`. A waiter may take it within the release (the pool lends
   * synchronously, and the new borrower marks it busy again); when none did, it is idle since the
   * release's reading of the clock, and the gate hears of one more idle connection.
   */
  giveBack(lease: { release(): void }, pool: { readonly [kReading]: number }): void {
    this.idle = true;
    lease.release();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- release() may lend it again at once, which clears it
    if (!this.idle) return;
    this.idleSince = pool[kReading];
    this.parked = true;
    this.moving = false;
    this.#gate.notifyIdle();
  }

  /**
   * The gate handed it, open and idle, to another pool (of another scope, same origin): from now on its
   * slot is `gate`'s and its breakage is reported through that pool's `invalidate`. The gate moves the
   * slot and its own tracking; the pools' bookkeeping is the caller's.
   */
  rehome(gate: ConnectionGate, invalidate: (reason: unknown) => void, now: number): void {
    this.#gate = gate;
    this.#invalidate = invalidate;
    this.idle = true;
    this.parked = false;
    this.moving = true;
    this.idleSince = now;
  }

  evict(reason: Error): void {
    this.evicted = true;
    this.#invalidate(reason);
  }

  /** Usable for another request right now. */
  usable(now: number): boolean {
    return this.gone === null && this.reusable && !this.evicted && !this.socket.destroyed && now < this.keepAliveUntil
      // Idle too close to the time this server was seen closing idle connections (no hint needed).
      && (!this.idle || this.requests === 0 || now - this.idleSince < this.#gate.idleLimit(this.origin, this.marginMs));
  }

  /** Applies a response's `Keep-Alive: timeout=N` (seconds): reusable until N s minus the margin, or never. */
  keepAliveHint(timeoutSeconds: number, marginMs: number, now: number): void {
    const usableMs = timeoutSeconds * 1000 - marginMs;
    if (usableMs <= 0) this.reusable = false;
    else this.keepAliveUntil = now + usableMs;
  }

  #broken(reason: Error): void {
    if (this.gone !== null) return;
    this.gone = reason;
    // Idle: close our side at once, so no CLOSE_WAIT socket lingers (incident 5). Busy: the HTTP client
    // finishes or fails the request, and the pool destroys the connection when its lease ends.
    if (this.idle && !this.detached) this.socket.destroy();
    this.#invalidate(reason);
  }

  /**
   * Its budget permit was lost (`reason`: the budget's `PermitLostError`). Idle, or the permit may already
   * be someone else's (`goneAt` passed): taken back at once (`revoke`, the pool's). Running a request: it
   * is no longer reusable, so it closes when its response is complete (body consumed), and the permit goes
   * back once it is closed; a response still running at `goneAt` is cut then, as the permit may go to
   * another process from that moment.
   */
  permitLost(reason: unknown, revoke: (reason: unknown) => void): void {
    const goneAt = (reason as { goneAt?: unknown } | null)?.goneAt;
    const now = this.now?.() ?? performance.now();
    if (this.idle || typeof goneAt !== 'number' || !(goneAt > now) || this.#disposed !== null) {
      revoke(reason);
      return;
    }
    this.reusable = false;
    this.#permitTimer = setTimeout(() => {
      this.#permitTimer = null;
      if (this.#disposed === null) revoke(reason);
    }, Math.ceil(goneAt - now));
    this.#permitTimer.unref();
  }

  /** Closes the socket; resolves once it is closed and its slot is free. */
  dispose(): Promise<void> {
    if (this.#disposed !== null) return this.#disposed;
    if (this.#permitTimer !== null) clearTimeout(this.#permitTimer);
    this.#permitTimer = null;
    // An idle, healthy connection (idle timeout, lifetime, eviction, close()) is closed the polite way:
    // our FIN, then the server's. A broken or busy one is destroyed at once.
    const graceful = this.closeGracefully && this.idle && this.gone === null && !this.detached && !this.socket.destroyed;
    this.gone ??= new Error(`connection #${this.id} to ${this.origin} was closed by the pool`);
    this.#gate.untrack(this);
    // The slot is free once the socket is closed, not merely asked to close: a remote that counts
    // connections (incident 2) must never see more than the cap because of one still closing.
    this.#disposed = new Promise<void>((resolve) => {
      const release = (): void => {
        this.#gate.release(this.origin, this);
        resolve();
      };
      if (this.detached || this.socket.closed) release();
      else if (graceful) {
        // The slot (and a budget's permit) goes back once the server has answered our FIN with its own,
        // so it has counted this connection out before another process can be granted the permit and
        // connect: a `destroy()` closes only our side, and a server that counts connections (incident 2)
        // may accept the next one before it reads our FIN. Bounded: a server that never closes its side
        // is cut off after GRACEFUL_CLOSE_MS.
        const timer = setTimeout(() => { this.socket.destroy(); }, GRACEFUL_CLOSE_MS);
        timer.unref();
        this.socket.once('close', () => {
          clearTimeout(timer);
          release();
        });
        this.socket.end();
      } else {
        this.socket.once('close', release);
        this.socket.destroy();
      }
    });
    return this.#disposed;
  }
}

/**
 * One pooled HTTP/1.1 connection: an undici `Client` (pipelining 1) bound for life to one socket that
 * the pool opened. The Client may never open another one behind the pool's back: a disconnected
 * connection is a dead resource, evicted and replaced by the pool.
 */
export class HttpConnection extends PooledSocket {
  readonly client: Client;
  /** The request running on it (until its body is consumed or cancelled), or null. */
  request: PooledRequest | null = null;
  /** The options its Client was made with: it may move only to a pool whose Client would be the same. */
  readonly options: ResolvedHttpPoolOptions;
  /** The end of its life (maxLifetimeMs less a random jitter, as the pool draws it), kept across pools. */
  readonly lifetimeEnds: number;
  /** The pool it belongs to: changes when the gate hands it over (see ConnectionGate.handOver). */
  home: ConnectionHome | null = null;
  #socketGiven = false;

  constructor(parts: OriginParts, socket: Socket, gate: ConnectionGate, context: CreateContext, o: ResolvedHttpPoolOptions, now: number) {
    super(parts.origin, socket, gate, context.invalidate, now);
    this.options = o;
    const jitter = o.maxLifetimeJitterMs > 0 ? Math.random() * o.maxLifetimeJitterMs : 0;
    this.lifetimeEnds = o.maxLifetimeMs > 0 ? now + o.maxLifetimeMs - jitter : Infinity;
    this.client = new Client(parts.origin, {
      connect: (_options, callback) => {
        if (this.#socketGiven || this.gone !== null || socket.destroyed) {
          callback(new ConnectionGoneError(`pooled connection #${this.id} to ${this.origin} is gone (${this.gone?.message ?? 'socket destroyed'}); a pooled Client never reconnects on its own`), null);
          return;
        }
        this.#socketGiven = true;
        // The Client unrefs it itself whenever it has nothing to do.
        socket.ref();
        // undici expects the connector to answer asynchronously, as a real connect does.
        queueMicrotask(() => {
          callback(null, socket);
        });
      },
      pipelining: 1,
      // undici's own keep-alive timer and the pool's idle eviction agree: the same timeout, the same margin.
      keepAliveTimeout: o.idleTimeoutMs,
      keepAliveMaxTimeout: o.idleTimeoutMs,
      keepAliveTimeoutThreshold: o.keepAliveSafetyMarginMs,
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
    });
  }

  /**
   * Fit to be handed, open, to a request of another pool right now: healthy and reusable (no close
   * announced, no FIN, keep-alive hint and learned idle close not reached), not evicted, and not at the
   * end of its life (a move must not extend it: the receiving pool guards it with {@link lifetimeEnds}).
   */
  movable(now: number): boolean {
    return this.home !== null && !this.detached && now < this.lifetimeEnds && this.usable(now);
  }

  /** Closes the socket and the Client and frees the connection's slot. */
  async close(): Promise<void> {
    // The socket first: the Client's destroy() would cut short a graceful close.
    await this.dispose();
    await this.client.destroy().catch(() => undefined);
  }
}

/**
 * Lets a connection whose budget permit is lost finish its current response (see PooledSocket.permitLost)
 * rather than be taken back at once. The pool's `budget` option calls `context.revoke(reason)` when a
 * permit is lost, looking `revoke` up at that moment: a create routes it through the connection it made.
 * Until the connection exists (and for idle ones) the pool's own revoke runs, as before. Returns the slot
 * the create fills in once it has made the connection.
 */
export function lossDeferred(context: CreateContext): { made: PooledSocket | null } {
  const slot: { made: PooledSocket | null } = { made: null };
  const revoke = context.revoke;
  (context as { revoke: CreateContext['revoke'] }).revoke = (reason?: unknown) => {
    if (slot.made === null) revoke(reason);
    else slot.made.permitLost(reason, revoke);
  };
  return slot;
}

/** The pool a connection belongs to, as its factory knows it. */
export interface ConnectionHome {
  /** Which pool (its factory's token). */
  readonly owner: object;
  /** Its pool no longer has it (closed, or handed to another pool). */
  left(connection: HttpConnection): void;
  /** The budget hook of the create that made or adopted it: routes a lost permit to the connection while it is this pool's. */
  readonly loss: { made: PooledSocket | null };
  /** Tells this pool the connection moved to another (CreateContext.moved): it leaves with reason 'moved', not as broken. */
  readonly moved: () => void;
}

/** Options that shape a connection's Client: a connection moves between pools only when they agree. */
function sameClientOptions(a: ResolvedHttpPoolOptions, b: ResolvedHttpPoolOptions): boolean {
  if (a === b) return true;
  if (a.idleTimeoutMs !== b.idleTimeoutMs || a.keepAliveSafetyMarginMs !== b.keepAliveSafetyMarginMs || a.headersTimeoutMs !== b.headersTimeoutMs
    || a.bodyTimeoutMs !== b.bodyTimeoutMs || a.clock !== b.clock) return false;
  const keys = Object.keys(a.tls);
  return keys.length === Object.keys(b.tls).length && keys.every((k) => Object.hasOwn(b.tls, k) && a.tls[k] === b.tls[k]);
}

/** What a connection factory tells its dispatcher. */
export interface ConnectionHooks {
  /** A connect failed (refused, TLS error, timeout): like undici, one waiting request fails with it. */
  connectFailed(error: unknown): void;
  opened(connection: HttpConnection): void;
  /** When the oldest request waiting for a connection of this pool arrived (its place in the gate's line). */
  arrivedAt(): number;
  closed(connection: HttpConnection): void;
}

/**
 * The pool factory of one origin's connections: slot from the gate, TCP connect, Client. A slot the gate
 * grants may come with an open connection of another pool (another scope's, same origin and Client
 * options; see ConnectionGate.handOver): the create then returns that connection, and the pool it left
 * drops it without closing it (its `destroy` sees it belongs to another home now).
 */
export function connectionFactory(parts: OriginParts, gate: ConnectionGate, o: ResolvedHttpPoolOptions, clock: Clock, hooks: ConnectionHooks): Factory<HttpConnection> {
  const connector = buildConnector({ ...o.tls, timeout: o.connectTimeoutMs });
  const budgeted = o.budgetFor?.(parts.origin) !== undefined;
  const owner = {};
  /** Makes `made` this pool's: the settings of this pool that a connection takes on wherever it was made. */
  const bind = (made: HttpConnection, loss: { made: PooledSocket | null }, context: CreateContext): void => {
    made.closeGracefully = budgeted;
    made.now = () => clock.now();
    made.marginMs = o.keepAliveSafetyMarginMs;
    const home: ConnectionHome = { owner, left: (c) => { hooks.closed(c); }, loss, moved: context.moved };
    made.home = home;
    loss.made = made;
    hooks.opened(made);
    // The pool makes its entry for the connection once this create has returned, a few promise
    // reactions later; a connection no waiter took by then sits idle in its pool, and may move from
    // there (see `parked`). Lent meanwhile, its release marks it instead.
    setImmediate(() => {
      if (made.home !== home) return;
      made.moving = false;
      if (made.idle && made.gone === null && !made.evicted) made.parked = true;
    });
  };
  return {
    async create(context) {
      const connection = lossDeferred(context);
      const adopted: { c: HttpConnection | null } = { c: null };
      const adopt: Adopter = (c, parked) => {
        if (!(c instanceof HttpConnection) || context.signal.aborted || !sameClientOptions(c.options, o) || (parked && !c.parked)) return null;
        const now = clock.now();
        if (!c.movable(now)) return null;
        // It leaves its pool's bookkeeping now; that pool's destroy of its entry then leaves it open.
        const from = c.home as ConnectionHome;
        from.left(c);
        // A permit lost by the pool it left is that pool's business no more.
        from.loss.made = null;
        c.rehome(gate, context.invalidate, now);
        bind(c, connection, context);
        adopted.c = c;
        // Idle in its pool: that pool drops its entry once the slot has moved (its destroy leaves a
        // connection of another home open).
        // Lent (its request just ended), the caller then releases it, and its pool drops it.
        return from.moved;
      };
      // Waiting for a slot only while a request needs this connection: a wait for a slot can evict another
      // origin's idle connection.
      await gate.acquire(parts.origin, AbortSignal.any([context.signal, context.unwanted]), hooks.arrivedAt(), adopt);
      if (adopted.c !== null) {
        // Its life is counted from its connect, not from this adoption.
        if (adopted.c.lifetimeEnds !== Infinity) context.guard({ validUntil: adopted.c.lifetimeEnds });
        return adopted.c;
      }
      let socket: Socket;
      try {
        socket = await connectSocket(connector, parts, context.signal);
      } catch (error) {
        gate.release(parts.origin);
        if (!context.signal.aborted) hooks.connectFailed(error);
        throw error;
      }
      try {
        const made = new HttpConnection(parts, socket, gate, context, o, clock.now());
        bind(made, connection, context);
        return made;
      } catch (error) {
        socket.destroy();
        gate.release(parts.origin);
        throw error;
      }
    },
    destroy: (connection) => {
      // Handed to another pool: no longer this one's to close (see ConnectionGate.handOver).
      if (connection.home !== null && connection.home.owner !== owner) return undefined;
      hooks.closed(connection);
      return connection.close();
    },
    validate: (connection) => connection.usable(clock.now()),
    socket: (connection) => connection.socket,
  };
}

// Response headers that decide whether a connection may be reused. This runs on every response of the
// dispatcher, so it reads undici's raw header buffers byte by byte, without decoding, lowering or a
// regular expression: both names are 10 bytes long, which skips nearly every other header. It indexes
// the buffers directly: the same loop reading through a byte-or-character callback, shared with the
// agent's strings, cost 2.4 times as much (1,800 instructions a response under callgrind), 6 times when
// one process used both.

const CONNECTION = [0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e]; // connection
const KEEP_ALIVE = [0x6b, 0x65, 0x65, 0x70, 0x2d, 0x61, 0x6c, 0x69, 0x76, 0x65]; // keep-alive
const CLOSE = [0x63, 0x6c, 0x6f, 0x73, 0x65]; // close
const TIMEOUT = [0x74, 0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74]; // timeout

/** `bytes` from `at` equals the lower-case `word` (ASCII case folded: `|0x20` maps only 'A'-'Z' onto letters; CR, which it would map onto '-', never reaches here). */
function matchesAt(bytes: Buffer, at: number, word: readonly number[]): boolean {
  for (let i = 0; i < word.length; i++) if (((bytes[at + i] ?? -1) | 0x20) !== word[i]) return false;
  return true;
}

/** Skips spaces and tabs from `j`. */
function skipBlanks(bytes: Buffer, j: number): number {
  while (bytes[j] === 0x20 || bytes[j] === 0x09) j++;
  return j;
}

/** A `Connection` value (a comma-separated token list, RFC 9110 §7.6.1) holds the token `close`: `keep-alive, close` closes. */
function hasCloseToken(value: Buffer): boolean {
  const n = value.length;
  let i = 0;
  while (i < n) {
    i = skipBlanks(value, i);
    if (i + CLOSE.length <= n && matchesAt(value, i, CLOSE)) {
      const j = skipBlanks(value, i + CLOSE.length);
      if (j >= n || value[j] === 0x2c) return true;
    }
    while (i < n && value[i] !== 0x2c) i++;
    i++;
  }
  return false;
}

/**
 * Longest keep-alive hint taken as given, in seconds (68 years): longer ones are clamped to it, by both
 * readers alike, so that a run of digits never adds up past what a double holds exactly.
 */
const MAX_HINT_SECONDS = 2 ** 31 - 1;

/** The seconds of `timeout=N` in a `Keep-Alive` value (`/timeout[ \t]*=[ \t]*(\d+)/i`), or -1. */
function keepAliveSeconds(value: Buffer): number {
  const n = value.length;
  for (let i = 0; i + TIMEOUT.length < n; i++) {
    if (!matchesAt(value, i, TIMEOUT)) continue;
    let j = skipBlanks(value, i + TIMEOUT.length);
    if (value[j] !== 0x3d) continue; // '='
    j = skipBlanks(value, j + 1);
    let seconds = -1;
    for (let c = value[j] ?? -1; c >= 0x30 && c <= 0x39; c = value[++j] ?? -1) seconds = Math.min((seconds < 0 ? 0 : seconds * 10) + (c - 0x30), MAX_HINT_SECONDS);
    if (seconds >= 0) return seconds;
  }
  return -1;
}

/** Applies a response's `Connection: close` and `Keep-Alive: timeout=N` (undici's raw header buffers) to `conn`. */
export function readConnectionHeaders(conn: PooledSocket, raw: readonly Buffer[], marginMs: number, now: number): void {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as Buffer;
    if (name.length !== 10) continue;
    if (matchesAt(name, 0, CONNECTION)) {
      if (hasCloseToken(raw[i + 1] as Buffer)) conn.reusable = false;
    } else if (matchesAt(name, 0, KEEP_ALIVE)) {
      const seconds = keepAliveSeconds(raw[i + 1] as Buffer);
      if (seconds >= 0) conn.keepAliveHint(seconds, marginMs, now);
    }
  }
}

const CONNECTION_NAME = /^connection$/i;
const KEEP_ALIVE_NAME = /^keep-alive$/i;
const CLOSE_TOKEN = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;
const TIMEOUT_PARAMETER = /timeout[ \t]*=[ \t]*(\d+)/i;

/** {@link readConnectionHeaders} for node's `rawHeaders` (strings, as the agent gets them): the same rules. */
export function readConnectionHeaderStrings(conn: PooledSocket, raw: readonly string[], marginMs: number, now: number): void {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length !== 10) continue;
    const value = raw[i + 1] as string;
    if (CONNECTION_NAME.test(name)) {
      if (CLOSE_TOKEN.test(value)) conn.reusable = false;
    } else if (KEEP_ALIVE_NAME.test(name)) {
      const seconds = TIMEOUT_PARAMETER.exec(value)?.[1];
      if (seconds !== undefined) conn.keepAliveHint(Math.min(Number(seconds), MAX_HINT_SECONDS), marginMs, now);
    }
  }
}

/** @internal For tests: whether the byte reader finds the token `close` in a `Connection` value. */
export function connectionCloses(value: string): boolean {
  return hasCloseToken(Buffer.from(value, 'latin1'));
}

/**
 * undici's own verdict on a socket: it sets its `reset` symbol on a socket it will close after the
 * current response (any `close` token, an HTTP/1.0 response without keep-alive, a keep-alive hint too
 * short to use). Found on the socket by its description, once: undici does not export its symbols.
 */
let kUndiciReset: symbol | undefined;

/** True when undici will close `socket` after the response now running on it. */
export function undiciWillClose(socket: object): boolean {
  if (kUndiciReset === undefined) {
    const found = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'reset');
    if (found === undefined) return false;
    kUndiciReset = found;
  }
  return (socket as Record<symbol, unknown>)[kUndiciReset] === true;
}

/** @internal For tests: the seconds the byte reader finds in a `Keep-Alive` value, or -1. */
export function keepAliveTimeoutOf(value: string): number {
  return keepAliveSeconds(Buffer.from(value, 'latin1'));
}
