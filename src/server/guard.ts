/** `guardServer()`: tracks a server's sockets, reaps half-closed and idle ones, and shuts the server down gracefully. */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { Housekeeper, type HousekeepingTask } from '../internal/housekeeper.js';
import type { TimerHandle } from '../internal/clock.js';
import { TypedEmitter, type Listener } from '../internal/emitter.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe } from '../pool/options.js';
import { ServerCodes, ServerGuardError } from './errors.js';
import { resolveServerGuardOptions, type ResolvedServerGuardOptions, type ServerGuardOptions } from './options.js';
import { hintSeconds, idleClose, type IdleTimeouts } from './keep-alive.js';
import { registerGuard, unregisterGuard } from './registry.js';
import type { ConnectionInfo, ConnectionKind, ConnectionState, ReapReport, ServerGuardStats, ServerWarning, ShutdownOptions, ShutdownReport } from './types.js';

export interface ServerGuardEvents {
  /** The guard ended or destroyed a socket (half-closed, idle, or not closing after being ended). */
  reap: ReapReport;
  /** A configuration inconsistency found when the server started listening. */
  warning: ServerWarning;
  /** `shutdown()` finished. */
  shutdown: ShutdownReport;
}

type Socketish = Duplex & Partial<Pick<net.Socket, 'remoteAddress' | 'remotePort' | 'bytesRead' | 'bytesWritten'>>;

interface Entry {
  readonly id: number;
  /** The accepted socket (a TLS server's TCP socket). */
  readonly raw: Socketish;
  /** The socket the application reads and writes: the TLS socket once the handshake is done, else `raw`. */
  socket: Socketish;
  readonly remote: string;
  readonly openedAt: number;
  kind: ConnectionKind;
  owner: string | null;
  requests: number;
  readonly responses: Set<http.ServerResponse>;
  session: Http2Session | null;
  /** HTTP/2 streams open on its session: requests in flight, like `responses` for HTTP/1. */
  streams: number;
  /** Its HTTP/2 CONNECT streams (tunnels, RFC 8441 WebSockets): reaped when half-closed, like upgraded sockets. */
  readonly tunnels: Set<Tunnel>;
  halfClosedAt: number | null;
  /** When the guard ended the socket (or found it ended by the application but still open when due). */
  endedAt: number | null;
  endedFor: typeof ServerCodes.HALF_CLOSED | typeof ServerCodes.IDLE | null;
  lastBytes: number;
  /** Bytes handed to the kernel at the last check: still moving means the application is being read. */
  lastSent: number;
  /** When the bytes it handed to the kernel last moved (the kernel takes them in batches of its buffer). */
  lastSentAt: number;
  /** Bytes read when its last response ended: more since then means a request is arriving. */
  bytesAtIdle: number;
  lastActiveAt: number;
  closed: boolean;
}

interface Tunnel {
  readonly stream: ServerHttp2Stream;
  readonly owner: string;
  halfClosedAt: number | null;
  endedAt: number | null;
}

interface ShutdownState {
  readonly startedAt: number;
  readonly deadline: number;
  stopped: boolean;
  connectionsAtStart: number;
  inFlightAtStart: number;
  requestsCompleted: number;
  requestsUnfinished: number;
  closeHeadersSent: number;
  idleClosed: number;
  upgradedClosed: number;
  healthChecksFailed: number;
  drained: (() => void) | null;
}

const guarded = new WeakMap<net.Server, ServerGuard>();
/** The configuration warnings printed as process warnings so far (see ServerGuard#warn). */
const printedWarnings = new Set<string>();

/**
 * The TCP socket under a TLS socket: node keeps it on the TLS handle (`_parentWrap`, lib/_tls_wrap.js).
 * It is how a finished handshake finds the connection accepted before it.
 */
function parentOf(socket: Duplex): Duplex | undefined {
  return (socket as { _handle?: { _parentWrap?: Duplex } | null })._handle?._parentWrap ?? undefined;
}

function formatRemote(socket: Socketish): string {
  const address = socket.remoteAddress;
  if (address === undefined) return 'unknown';
  return address.includes(':') ? `[${address}]:${String(socket.remotePort)}` : `${address}:${String(socket.remotePort)}`;
}

/** The path of a request target without its query string: routes in reports must not carry tokens. */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '?';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

type Http1Server = http.Server | https.Server;

function isHttp1(server: net.Server): server is Http1Server {
  return server instanceof http.Server || server instanceof https.Server;
}

/**
 * Watches one server. Made by {@link guardServer}; see docs/server.md. The guard observes the server's
 * events by wrapping its `emit` rather than adding listeners, because node changes behaviour on listener
 * counts (an `upgrade` listener makes it hand over upgrade requests instead of answering them).
 */
export class ServerGuard {
  readonly name: string;
  readonly server: net.Server;
  readonly #options: ResolvedServerGuardOptions;
  readonly #emitter: TypedEmitter<ServerGuardEvents>;
  readonly #housekeeper: Housekeeper;
  readonly #task: HousekeepingTask;
  readonly #bySocket = new Map<Duplex, Entry>();
  readonly #open = new Set<Entry>();
  readonly #sessions = new WeakMap<Http2Session, Entry>();
  readonly #originalEmit: net.Server['emit'];
  readonly #wrappedEmit: net.Server['emit'];
  readonly #onShutdown: (() => void)[] = [];
  readonly #warnedReap = new Set<string>();
  /** Responses given `Connection: close` by the shutdown (the last one queued on their socket). */
  readonly #markedClose = new WeakSet<http.ServerResponse>();
  readonly #settled = new WeakSet<http.ServerResponse>();
  #nextId = 0;
  #accepted = 0;
  #reaped = { halfClosed: 0, idle: 0, destroyed: 0 };
  #registered = false;
  #closed = false;
  /** Closed by close() (or replaced by another guard): never opens again, even if its server listens again. */
  #closedByHand = false;
  #ready = true;
  #dispatching: Entry | null = null;
  #shutdown: ShutdownState | null = null;
  #shutdownPromise: Promise<ShutdownReport> | null = null;
  #lastShutdownMs: number | null = null;
  #abandoned: ConnectionInfo[] = [];

  constructor(server: net.Server, options?: ServerGuardOptions) {
    if (!(server instanceof net.Server)) {
      throw new ServerGuardError(ServerCodes.NOT_A_SERVER, `guardServer(): expected a net.Server (or an http, https, http2 or tls server), got ${describe(server)}`);
    }
    const existing = guarded.get(server);
    if (existing !== undefined && !existing.#closed) {
      throw new ServerGuardError(ServerCodes.ALREADY_GUARDED, `guardServer(): this server is already guarded by "${existing.name}"; close() that guard first`);
    }
    // A guard that closed with the server is replaced: it must neither re-open nor stay listed.
    if (existing !== undefined) existing.close();
    this.#options = resolveServerGuardOptions(options);
    this.name = this.#options.name;
    this.server = server;
    this.#emitter = new TypedEmitter((error, event) => {
      process.emitWarning(`a listener of server guard "${this.name}" event "${event}" threw: ${String(error)}`, { code: 'LIFEGUARD_LISTENER' });
    });
    this.#housekeeper = Housekeeper.for(this.#options.clock);
    this.#task = { periodMs: this.#options.checkIntervalMs, run: (now) => { this.#check(now); } };

    // eslint-disable-next-line @typescript-eslint/unbound-method -- kept as is, to be put back by close()
    this.#originalEmit = server.emit;
    const original = this.#originalEmit;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wrapper runs with the server as `this`
    const guard = this;
    this.#wrappedEmit = function (this: net.Server, event: string | symbol, ...args: unknown[]): boolean {
      // A server that listens again after close() is guarded again (it was left unguarded, silently).
      if (guard.#closed && event === 'listening' && !guard.#closedByHand) guard.#reopen();
      if (guard.#closed) return Reflect.apply(original, this, [event, ...args]) as boolean;
      return guard.#dispatch(this, event, args);
    };
    server.emit = this.#wrappedEmit;
    guarded.set(server, this);
    registerGuard(this);
    // Checked when the server listens (timeouts are often set between creation and listen()), or on the
    // next tick when it already does, so that a 'warning' listener added right after guardServer() hears it.
    if (server.listening) {
      queueMicrotask(() => { if (!this.#closed) this.#checkTimeouts(); });
      const untracked = this.#untracked();
      if (untracked > 0) {
        queueMicrotask(() => {
          if (!this.#closed) this.#warn(ServerCodes.UNTRACKED, `server "${this.name}": guarded while already listening with ${String(untracked)} connection(s) open; they are not tracked (no reaping, no Connection: close), though shutdown() waits for them. Call guardServer() before listen().`);
        });
      }
    }
  }

  on<K extends keyof ServerGuardEvents>(event: K, listener: Listener<ServerGuardEvents[K]>): this {
    this.#emitter.on(event, listener);
    return this;
  }

  off<K extends keyof ServerGuardEvents>(event: K, listener: Listener<ServerGuardEvents[K]>): this {
    this.#emitter.off(event, listener);
    return this;
  }

  once<K extends keyof ServerGuardEvents>(event: K, listener: Listener<ServerGuardEvents[K]>): this {
    this.#emitter.once(event, listener);
    return this;
  }

  /** False from the moment `shutdown()` begins: the health check fails from then on. */
  get ready(): boolean {
    return this.#ready && !this.#closed;
  }

  get shuttingDown(): boolean {
    return this.#shutdownPromise !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get options(): Readonly<ResolvedServerGuardOptions> {
    return this.#options;
  }

  /**
   * Registers a function called when the server stops accepting, like Go's `RegisterOnShutdown`: start
   * a protocol's own goodbye for connections the guard cannot see into. Not awaited.
   */
  onShutdown(fn: () => void): void {
    if (typeof fn !== 'function') throw new InvalidOptionError('onShutdown', `invalid argument of onShutdown(): expected a function, got ${describe(fn)}`);
    this.#onShutdown.push(fn);
  }

  /** The open connections, oldest first. */
  connections(): ConnectionInfo[] {
    const now = this.#options.clock.now();
    return [...this.#open].map((e) => this.#info(e, now));
  }

  stats(): ServerGuardStats {
    const connections: Record<ConnectionState, number> = { open: 0, active: 0, idle: 0, upgraded: 0, 'half-closed': 0, ending: 0 };
    for (const e of this.#open) connections[this.#state(e)]++;
    return {
      server: this.name,
      connections,
      open: this.#open.size,
      accepted: this.#accepted,
      reaped: { ...this.#reaped },
      ready: this.ready,
      shuttingDown: this.shuttingDown,
      lastShutdownMs: this.#lastShutdownMs,
    };
  }

  /**
   * Stops guarding for good: restores the server's `emit`, drops the housekeeping task and forgets the
   * sockets (they stay open). Idempotent. The guard also closes by itself when the server emits `close`,
   * but then keeps watching for a new `listening`: a server that listens again is guarded again.
   */
  close(): void {
    if (!this.#closedByHand) {
      this.#closedByHand = true;
      if (this.server.emit === this.#wrappedEmit) this.server.emit = this.#originalEmit;
      unregisterGuard(this);
    }
    this.#close(false);
  }

  /** The server listens again after it closed: guard it as new (ready, no shutdown), counts kept. */
  #reopen(): void {
    this.#closed = false;
    this.#ready = true;
    this.#shutdown = null;
    this.#shutdownPromise = null;
    this.#abandoned = [];
    registerGuard(this);
  }

  #close(serverClosed: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    // Closed by hand during a shutdown: what is still open is what blocked it, though the guard no
    // longer waits. (When the server closed, its sockets are closing: their 'close' is on its way.)
    if (!serverClosed && this.#shutdown !== null) {
      const now = this.#options.clock.now();
      this.#abandoned = [...this.#open].filter((e) => !e.socket.destroyed).map((e) => this.#info(e, now));
    }
    // The server's 'close' can come before its last sockets' own: their responses still in flight are cut.
    const shutdown = this.#shutdown;
    if (shutdown?.stopped === true) for (const e of this.#open) for (const res of e.responses) this.#settle(res, shutdown);
    for (const e of this.#open) this.#detach(e);
    this.#open.clear();
    this.#bySocket.clear();
    this.#unregisterTask();
    // Closed with its server, it stays listed (its last shutdown's duration is still worth a scrape).
    if (!serverClosed) unregisterGuard(this);
    // The server emits 'close' when its last connection goes, before that socket's own 'close' listeners
    // run: a shutdown waiting for the last socket must not wait for the deadline.
    this.#shutdown?.drained?.();
  }

  /**
   * Graceful shutdown: turns not ready, runs `beforeShutdown`, waits `shutdownDelayMs`, stops accepting,
   * lets in-flight requests finish with `Connection: close`, closes idle keep-alive sockets at once,
   * hands other sockets to `closeConnection`, and destroys what is left at the deadline. Never rejects
   * for what connections do; a second call returns the first call's promise.
   */
  shutdown(options?: ShutdownOptions): Promise<ShutdownReport> {
    if (this.#shutdownPromise !== null) return this.#shutdownPromise;
    if (options !== undefined && (typeof options !== 'object' || (options as unknown) === null)) {
      throw new InvalidOptionError('options', `invalid argument of shutdown(): expected an object or undefined, got ${describe(options)}`);
    }
    const timeoutMs = options?.timeoutMs ?? this.#options.shutdownTimeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 10) {
      throw new InvalidOptionError('timeoutMs', `invalid option "timeoutMs" of shutdown(): expected a number >= 10, got ${describe(timeoutMs)}`);
    }
    if (this.#options.shutdownDelayMs >= timeoutMs) {
      throw new InvalidOptionError('timeoutMs', `invalid option "timeoutMs" of shutdown(): must be > shutdownDelayMs (${this.#options.shutdownDelayMs}), which it includes, got number ${timeoutMs}`);
    }
    this.#shutdownPromise = this.#runShutdown(timeoutMs);
    return this.#shutdownPromise;
  }

  // ---- observation ---------------------------------------------------------------------------------

  #dispatch(server: net.Server, event: string | symbol, args: unknown[]): boolean {
    const emit = (): boolean => Reflect.apply(this.#originalEmit, server, [event, ...args]) as boolean;
    switch (event) {
      // HTTP/2 emits 'session' from inside the 'connection' (or 'secureConnection') listener: the entry being
      // dispatched is what that session belongs to.
      case 'connection':
      case 'secureConnection': {
        const entry = event === 'connection' ? this.#track(args[0] as Socketish) : this.#onSecure(args[0] as Socketish);
        const previous = this.#dispatching;
        this.#dispatching = entry;
        try {
          return emit();
        } finally {
          this.#dispatching = previous;
        }
      }
      // Node hands `Expect:` requests to checkContinue / checkExpectation when the application listens to them.
      case 'request':
      case 'checkContinue':
      case 'checkExpectation':
        if (this.#onRequest(args[0] as http.IncomingMessage, args[1] as http.ServerResponse)) return true;
        return emit();
      case 'upgrade':
      case 'connect': {
        const req = args[0] as http.IncomingMessage;
        const entry = this.#bySocket.get(args[1] as Duplex);
        if (entry !== undefined) {
          entry.kind = event;
          entry.owner = event === 'upgrade' ? `upgrade ${req.method ?? 'GET'} ${pathOf(req.url)}` : `connect ${req.url ?? '?'}`;
          entry.requests++;
          // Taken over during shutdown: the handler gets it, then it is asked to close like the others.
          if (this.#shutdown?.stopped === true) queueMicrotask(() => { this.#closeOther(entry); });
        }
        return emit();
      }
      case 'session': {
        const session = args[0] as Http2Session;
        const entry = this.#dispatching;
        if (entry !== null) {
          entry.kind = 'http2';
          entry.session = session;
          this.#sessions.set(session, entry);
          if (this.#shutdown?.stopped === true) session.close();
        }
        return emit();
      }
      case 'stream': {
        const stream = args[0] as ServerHttp2Stream;
        const headers = args[1] as IncomingHttpHeaders;
        const entry = stream.session === undefined ? undefined : this.#sessions.get(stream.session);
        if (entry !== undefined) {
          entry.requests++;
          entry.streams++;
          const protocol = headers[':protocol'];
          const tunnel: Tunnel | null = headers[':method'] !== 'CONNECT' ? null : {
            stream,
            owner: typeof protocol === 'string' ? `upgrade ${protocol} ${pathOf(headers[':path'])}` : `connect ${String(headers[':authority'])}`,
            halfClosedAt: null,
            endedAt: null,
          };
          if (tunnel !== null) entry.tunnels.add(tunnel);
          stream.once('close', () => {
            entry.streams--;
            if (tunnel !== null) entry.tunnels.delete(tunnel);
            entry.lastActiveAt = this.#options.clock.now();
          });
          entry.owner = tunnel?.owner ?? `${String(headers[':method'])} ${pathOf(headers[':path'])}`;
        }
        return emit();
      }
      case 'listening': {
        const result = emit();
        this.#checkTimeouts();
        return result;
      }
      case 'close': {
        const result = emit();
        this.#close(true);
        return result;
      }
      default:
        return emit();
    }
  }

  #track(socket: Socketish): Entry {
    const now = this.#options.clock.now();
    const entry: Entry = {
      id: ++this.#nextId,
      raw: socket,
      socket,
      remote: formatRemote(socket),
      openedAt: now,
      kind: isHttp1(this.server) ? 'http' : 'net',
      owner: null,
      requests: 0,
      responses: new Set(),
      session: null,
      streams: 0,
      tunnels: new Set(),
      halfClosedAt: null,
      endedAt: null,
      endedFor: null,
      lastBytes: 0,
      lastSent: 0,
      lastSentAt: now,
      bytesAtIdle: 0,
      lastActiveAt: now,
      closed: false,
    };
    this.#accepted++;
    this.#bySocket.set(socket, entry);
    this.#open.add(entry);
    this.#listen(entry, socket);
    if (!this.#registered) {
      this.#registered = true;
      this.#housekeeper.register(this.#task);
    }
    return entry;
  }

  #onSecure(tlsSocket: Socketish): Entry | null {
    const parent = parentOf(tlsSocket);
    const entry = parent === undefined ? undefined : this.#bySocket.get(parent);
    if (entry === undefined) return null;
    entry.socket = tlsSocket;
    this.#bySocket.set(tlsSocket, entry);
    this.#listen(entry, tlsSocket);
    return entry;
  }

  // Listeners on the socket itself: 'end' and 'close' neither start the flow of data nor change what
  // node does with the socket (unlike 'data', which would switch a paused socket to flowing).
  #listen(entry: Entry, socket: Duplex): void {
    const onEnd = (): void => {
      if (entry.halfClosedAt === null) entry.halfClosedAt = this.#options.clock.now();
    };
    const onClose = (): void => { this.#remove(entry); };
    socket.on('end', onEnd);
    socket.on('close', onClose);
    listeners.set(socket, { onEnd, onClose });
  }

  #detach(entry: Entry): void {
    for (const socket of new Set([entry.raw, entry.socket])) {
      const l = listeners.get(socket);
      if (l === undefined) continue;
      socket.off('end', l.onEnd);
      socket.off('close', l.onClose);
      listeners.delete(socket);
    }
  }

  #remove(entry: Entry): void {
    if (entry.closed) return;
    entry.closed = true;
    this.#detach(entry);
    this.#open.delete(entry);
    this.#bySocket.delete(entry.raw);
    this.#bySocket.delete(entry.socket);
    // The socket's 'close' can come before its responses' own: the shutdown must count them before it reports.
    const shutdown = this.#shutdown;
    if (shutdown?.stopped === true) for (const res of entry.responses) this.#settle(res, shutdown);
    if (this.#open.size === 0) {
      this.#unregisterTask();
      this.#shutdown?.drained?.();
    }
  }

  /** Connections the server holds that the guard does not: accepted before it was guarded. */
  #untracked(): number {
    const count = (this.server as { _connections?: unknown })._connections;
    return typeof count === 'number' ? Math.max(0, count - this.#open.size) : 0;
  }

  #unregisterTask(): void {
    if (!this.#registered) return;
    this.#registered = false;
    this.#housekeeper.unregister(this.#task);
  }

  /** Returns true when the guard answered the request itself (the health check during shutdown). */
  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const entry = this.#bySocket.get(req.socket);
    const shutdown = this.#shutdown;
    if (this.#options.healthCheckPath !== null && !this.#ready && pathOf(req.url) === this.#options.healthCheckPath) {
      if (shutdown !== null) shutdown.healthChecksFailed++;
      res.statusCode = 503;
      res.setHeader('Content-Type', 'application/json');
      // HTTP/2 forbids connection headers (its GOAWAY does that job).
      if (req.httpVersionMajor < 2) res.setHeader('Connection', 'close');
      res.end('{"status":"shutting down"}');
      if (entry !== undefined) this.#trackResponse(entry, res);
      return true;
    }
    if (entry === undefined) return false; // accepted before the guard, or HTTP/2 compatibility API
    entry.requests++;
    entry.owner = `${req.method ?? '?'} ${pathOf(req.url)}`;
    this.#trackResponse(entry, res);
    if (shutdown?.stopped === true) {
      this.#markLast(entry, shutdown);
    } else if (this.#options.keepAliveHint !== 'node' && res.shouldKeepAlive) {
      const seconds = this.#hintSeconds();
      if (seconds !== null) res.setHeader('Keep-Alive', `timeout=${String(seconds)}`);
    }
    return false;
  }

  /**
   * Shutdown: `Connection: close` goes on the last response queued on the socket only. Node closes the
   * socket after the first response that says close, so on a pipelined socket an earlier one saying it
   * would cut the responses queued behind it, whose handlers already ran.
   */
  #markLast(entry: Entry, shutdown: ShutdownState): void {
    const responses = [...entry.responses];
    const last = responses[responses.length - 1];
    for (const res of responses) {
      if (res.headersSent) continue;
      if (res === last) {
        if (!this.#markedClose.has(res)) {
          res.setHeader('Connection', 'close');
          this.#markedClose.add(res);
          shutdown.closeHeadersSent++;
        }
      } else if (this.#markedClose.has(res)) {
        res.removeHeader('Connection');
        this.#markedClose.delete(res);
        shutdown.closeHeadersSent--;
      }
    }
  }

  #trackResponse(entry: Entry, res: http.ServerResponse): void {
    entry.responses.add(res);
    res.once('close', () => {
      entry.responses.delete(res);
      entry.lastActiveAt = this.#options.clock.now();
      entry.bytesAtIdle = entry.socket.bytesRead ?? 0;
      const shutdown = this.#shutdown;
      if (shutdown?.stopped !== true) return;
      this.#settle(res, shutdown);
      // A keep-alive response whose headers left before the shutdown could not say `Connection: close`:
      // node keeps its socket open for the next request, so the guard closes it now that it is idle.
      // destroySoon() as node does for its own last response: flush, FIN, then close, so that a request
      // racing the close is reset (never processed) rather than read on a socket that cannot answer.
      if (entry.responses.size === 0 && entry.kind === 'http' && !entry.closed && entry.socket.writable) {
        shutdown.idleClosed++;
        destroySoon(entry.socket);
      }
    });
  }

  /** Counts a response of the shutdown once, as completed or cut (the client went away, or its socket was destroyed). */
  #settle(res: http.ServerResponse, shutdown: ShutdownState): void {
    if (this.#settled.has(res)) return;
    this.#settled.add(res);
    if (res.writableFinished) shutdown.requestsCompleted++;
    else shutdown.requestsUnfinished++;
  }

  // ---- housekeeping --------------------------------------------------------------------------------

  #check(now: number): void {
    const o = this.#options;
    for (const e of [...this.#open]) {
      const bytes = (e.socket.bytesRead ?? 0) + (e.socket.bytesWritten ?? 0);
      if (bytes !== e.lastBytes) {
        e.lastBytes = bytes;
        e.lastActiveAt = now;
      }
      // Sent, not buffered: bytesWritten counts what waits in node's queue too, which a stalled reader never takes.
      const sent = sendProgress(e.raw);
      if (sent !== e.lastSent) {
        e.lastSent = sent;
        e.lastSentAt = now;
      }
      if (e.socket.destroyed) continue; // its 'close' is on its way
      // The peer's FIN reached the stream but nobody read up to it, so 'end' has not fired (a paused socket).
      if (e.halfClosedAt === null && readableEnded(e.socket)) e.halfClosedAt = now;
      if (e.endedAt !== null) {
        // Destroyed only once its bytes stopped moving: a slow reader still taking a long reply is served.
        if (now - e.endedAt >= o.destroyAfterEndMs && now - e.lastSentAt >= o.destroyAfterEndMs) this.#destroy(e, now);
        continue;
      }
      if (this.#shutdown?.stopped === true) continue; // the shutdown's own deadline rules now
      if (e.tunnels.size > 0) this.#checkTunnels(e, now);
      // Never while an HTTP response is in flight, nor while the application is still writing: a peer
      // that half-closed after its request still reads the answer.
      if (e.halfClosedAt !== null && now - e.halfClosedAt >= o.halfClosedTimeoutMs && e.responses.size === 0 && now - e.lastSentAt >= o.halfClosedTimeoutMs) this.#reap(e, ServerCodes.HALF_CLOSED, now);
      else if (o.idleTimeoutMs !== Infinity && e.responses.size === 0 && e.streams === 0 && now - e.lastActiveAt >= o.idleTimeoutMs) this.#reap(e, ServerCodes.IDLE, now);
    }
  }

  /**
   * HTTP/2 CONNECT streams are what upgraded sockets are in HTTP/1: a peer that half-closed one (sent
   * END_STREAM) is done with it, and an application that never ends its side holds the stream (and a
   * concurrent-stream slot) for ever. Node ends the session when the TCP peer half-closes, not a stream.
   * Like HTTP/1, never while the session is still sending.
   */
  #checkTunnels(e: Entry, now: number): void {
    const o = this.#options;
    for (const t of [...e.tunnels]) {
      const s = t.stream;
      if (s.closed || s.destroyed) continue;
      if (t.endedAt !== null) {
        if (now - t.endedAt < o.destroyAfterEndMs) continue;
        e.tunnels.delete(t);
        this.#reaped.destroyed++;
        const info = { ...this.#info(e, now), owner: t.owner };
        s.close(http2.constants.NGHTTP2_CANCEL);
        this.#report({ ...info, code: ServerCodes.DESTROYED, action: 'destroyed', server: this.name, message: `server "${this.name}": reset an HTTP/2 stream of ${describeConnection(info)}: it did not close within destroyAfterEndMs=${String(o.destroyAfterEndMs)} after being ended` });
        continue;
      }
      if (t.halfClosedAt === null && (readableEnded(s) || (s.state as { remoteClose?: number }).remoteClose === 1)) t.halfClosedAt = now;
      if (t.halfClosedAt === null || now - t.halfClosedAt < o.halfClosedTimeoutMs || now - e.lastSentAt < o.halfClosedTimeoutMs) continue;
      t.endedAt = now;
      if (s.writableEnded) continue; // the application ended it: it only has to close in time
      this.#reaped.halfClosed++;
      const info = { ...this.#info(e, now), owner: t.owner, halfClosedMs: Math.round(now - t.halfClosedAt) };
      s.on('error', ignore);
      if (s.headersSent) s.end();
      else s.respond({ ':status': 504 }, { endStream: true });
      this.#report({ ...info, code: ServerCodes.HALF_CLOSED, action: 'ended', server: this.name, message: `server "${this.name}": ended an HTTP/2 stream of ${describeConnection(info)}: the peer half-closed it ${String(info.halfClosedMs)} ms ago and the application had not ended it (halfClosedTimeoutMs=${String(o.halfClosedTimeoutMs)})` });
    }
  }

  #reap(e: Entry, code: typeof ServerCodes.HALF_CLOSED | typeof ServerCodes.IDLE, now: number): void {
    e.endedAt = now;
    e.endedFor = code;
    // The application ended it (not counted as reaped): it only has to close within destroyAfterEndMs.
    if (e.socket.writableEnded) return;
    if (code === ServerCodes.HALF_CLOSED) this.#reaped.halfClosed++;
    else this.#reaped.idle++;
    const info = this.#info(e, now);
    // The application may still write to it; that write must not become an unhandled 'error'.
    e.socket.on('error', ignore);
    e.socket.end();
    const why = code === ServerCodes.HALF_CLOSED
      ? `the peer half-closed ${String(info.halfClosedMs)} ms ago and the application had not ended it (halfClosedTimeoutMs=${String(this.#options.halfClosedTimeoutMs)})`
      : `no byte moved for ${String(info.idleMs)} ms (idleTimeoutMs=${String(this.#options.idleTimeoutMs)})`;
    this.#report({ ...info, code, action: 'ended', server: this.name, message: `server "${this.name}": ended ${describeConnection(info)}: ${why}` });
  }

  #destroy(e: Entry, now: number): void {
    const info = this.#info(e, now);
    this.#reaped.destroyed++;
    e.socket.on('error', ignore);
    e.socket.destroy();
    if (e.raw !== e.socket) e.raw.destroy();
    const why = `it did not close within destroyAfterEndMs=${String(this.#options.destroyAfterEndMs)} after being ended (${e.endedFor ?? 'ended'})`;
    this.#report({ ...info, code: ServerCodes.DESTROYED, action: 'destroyed', server: this.name, message: `server "${this.name}": destroyed ${describeConnection(info)}: ${why}` });
  }

  #report(report: ReapReport): void {
    if (this.#emitter.hasListeners('reap')) {
      this.#emitter.emit('reap', report);
      return;
    }
    // Nobody listens: say it once per code rather than once per socket (thousands in incident 5).
    if (this.#warnedReap.has(report.code)) return;
    this.#warnedReap.add(report.code);
    process.emitWarning(`${report.message} (further ${report.code} reports of this guard are counted in stats().reaped only; listen to 'reap' for each)`, { code: report.code });
  }

  #state(e: Entry): ConnectionState {
    if (e.endedAt !== null || e.socket.writableEnded) return 'ending';
    if (e.halfClosedAt !== null) return 'half-closed';
    if (e.kind === 'upgrade' || e.kind === 'connect' || e.kind === 'http2') return 'upgraded';
    if (e.kind === 'net') return 'open';
    return e.responses.size > 0 ? 'active' : 'idle';
  }

  #info(e: Entry, now: number): ConnectionInfo {
    return {
      id: e.id,
      remote: e.remote,
      kind: e.kind,
      state: this.#state(e),
      owner: e.owner,
      ageMs: Math.round(now - e.openedAt),
      idleMs: Math.round(e.responses.size + e.streams > 0 ? 0 : now - e.lastActiveAt),
      halfClosedMs: e.halfClosedAt === null ? null : Math.round(now - e.halfClosedAt),
      bytesIn: e.socket.bytesRead ?? 0,
      bytesOut: e.raw === e.socket ? sentBytes(e.socket) : e.socket.bytesWritten ?? 0,
      requests: e.requests,
      inFlight: e.responses.size + e.streams,
    };
  }

  // ---- keep-alive alignment ------------------------------------------------------------------------

  #timeouts(): IdleTimeouts | null {
    const s = this.server;
    if (!isHttp1(s)) return null;
    return { keepAliveTimeout: s.keepAliveTimeout, timeout: s.timeout, idleTimeoutMs: this.#options.idleTimeoutMs };
  }

  #idleClose(): { ms: number; by: string } | null {
    const t = this.#timeouts();
    return t === null ? null : idleClose(t);
  }

  #hintSeconds(): number | null {
    const t = this.#timeouts();
    return t === null ? null : hintSeconds(this.#options.keepAliveHint, t, this.#options.keepAliveHintMarginMs);
  }

  #checkTimeouts(): void {
    const s = this.server;
    if (!isHttp1(s)) return;
    const close = this.#idleClose();
    const margin = this.#options.keepAliveHintMarginMs;
    if (close !== null) {
      const hint = this.#hintSeconds();
      if (hint === null) {
        this.#warn(ServerCodes.KEEPALIVE_HINT, `server "${this.name}": keepAliveHint "safe" cannot send a hint: idle sockets close after ${String(close.ms)} ms (${close.by}), less than keepAliveHintMarginMs=${String(margin)} + 1 s; node's own hint (timeout=${String(Math.floor(s.keepAliveTimeout / 1000))}) is sent instead. Raise keepAliveTimeout.`);
      } else if (hint * 1000 > close.ms - margin) {
        this.#warn(ServerCodes.KEEPALIVE_HINT, `server "${this.name}": responses say "Keep-Alive: timeout=${String(hint)}" but idle sockets close after ${String(close.ms)} ms (${close.by}); a client that trusts the hint can send a request just as the server closes the socket (keepAliveHintMarginMs=${String(margin)}). Pass keepAliveHint: "safe" to send timeout=${String(Math.max(0, Math.floor((close.ms - margin) / 1000)))}, or align the timeouts.`);
      }
    }
    if (s.requestTimeout > 0 && s.headersTimeout > s.requestTimeout) {
      this.#warn(ServerCodes.TIMEOUTS, `server "${this.name}": headersTimeout=${String(s.headersTimeout)} is longer than requestTimeout=${String(s.requestTimeout)}, so it can never fire; set headersTimeout <= requestTimeout.`);
    }
  }

  #warn(code: ServerWarning['code'], message: string): void {
    const warning: ServerWarning = { code, server: this.name, message };
    if (this.#emitter.hasListeners('warning')) {
      this.#emitter.emit('warning', warning);
      return;
    }
    // Node prints a warning once per process: a suite that starts a server per test, each with node's
    // defaults, would otherwise print the same lines once per test. Keyed by the message without the name.
    const key = `${code} ${message.replace(`server "${this.name}"`, '')}`;
    if (printedWarnings.has(key)) return;
    printedWarnings.add(key);
    process.emitWarning(`${message} (printed once per process; listen to 'warning' on a guard for each)`, { code });
  }

  // ---- shutdown ------------------------------------------------------------------------------------

  async #runShutdown(timeoutMs: number): Promise<ShutdownReport> {
    const clock = this.#options.clock;
    const startedAt = clock.now();
    const state: ShutdownState = {
      startedAt,
      deadline: startedAt + timeoutMs,
      stopped: false,
      connectionsAtStart: 0,
      inFlightAtStart: 0,
      requestsCompleted: 0,
      requestsUnfinished: 0,
      closeHeadersSent: 0,
      idleClosed: 0,
      upgradedClosed: 0,
      healthChecksFailed: 0,
      drained: null,
    };
    this.#shutdown = state;
    this.#ready = false;
    const timers: { deadline: TimerHandle | null } = { deadline: null };
    const deadlinePassed = new Promise<void>((resolve) => {
      // Ref'd: the caller is waiting on this shutdown.
      timers.deadline = clock.setTimeout(resolve, timeoutMs, false);
    });
    try {
      if (this.#options.beforeShutdown !== null) {
        await Promise.race([Promise.resolve().then(this.#options.beforeShutdown).catch((error: unknown) => {
          process.emitWarning(`server guard "${this.name}": beforeShutdown threw: ${String(error)}`, { code: 'LIFEGUARD_HOOK' });
        }), deadlinePassed]);
      }
      const delay = Math.min(this.#options.shutdownDelayMs, state.deadline - clock.now());
      if (delay > 0) {
        await new Promise<void>((resolve) => { clock.setTimeout(resolve, delay, false); });
      }
      this.#stopAccepting(state);
      // Untracked connections (accepted before the guard) end with the server's own 'close'.
      const deadline = { passed: false };
      void deadlinePassed.then(() => { deadline.passed = true; });
      while (!this.#closed && !deadline.passed && (this.#open.size > 0 || this.#untracked() > 0)) {
        await Promise.race([new Promise<void>((resolve) => { state.drained = resolve; }), deadlinePassed]);
      }
    } finally {
      if (timers.deadline !== null) clock.clearTimeout(timers.deadline);
    }
    const now = clock.now();
    const untracked = this.#closed ? 0 : this.#untracked();
    if (untracked > 0 && isHttp1(this.server)) this.server.closeAllConnections();
    const blockers = [...this.#abandoned, ...[...this.#open].map((e) => this.#info(e, now))];
    if (blockers.length > 0) {
      for (const e of [...this.#open]) {
        e.socket.on('error', ignore);
        e.socket.destroy();
        if (e.raw !== e.socket) e.raw.destroy();
        e.session?.destroy();
      }
    }
    const durationMs = Math.round(clock.now() - startedAt);
    this.#lastShutdownMs = durationMs;
    const clean = blockers.length === 0 && state.requestsUnfinished === 0 && untracked === 0;
    const cut = (state.requestsUnfinished === 0 ? '' : `; ${String(state.requestsUnfinished)} response(s) did not finish (their socket closed first)`)
      + (untracked === 0 ? '' : `; ${String(untracked)} connection(s) accepted before the guard were still open at the deadline`);
    const report: ShutdownReport = {
      code: clean ? ServerCodes.SHUTDOWN_CLEAN : ServerCodes.SHUTDOWN_FORCED,
      server: this.name,
      durationMs,
      timeoutMs,
      connectionsAtStart: state.connectionsAtStart,
      inFlightAtStart: state.inFlightAtStart,
      requestsCompleted: state.requestsCompleted,
      requestsUnfinished: state.requestsUnfinished,
      closeHeadersSent: state.closeHeadersSent,
      idleClosed: state.idleClosed,
      upgradedClosed: state.upgradedClosed,
      healthChecksFailed: state.healthChecksFailed,
      blockers,
      message: blockers.length === 0
        ? (clean ? `server "${this.name}" shut down in ${String(durationMs)} ms: every connection closed on its own` : `server "${this.name}" shut down in ${String(durationMs)} ms: every connection closed${cut}`)
        : `server "${this.name}" shut down in ${String(durationMs)} ms: ${String(blockers.length)} connection(s) still open at the ${String(timeoutMs)} ms deadline were destroyed${cut}:\n${blockers.slice(0, 10).map((b) => `  ${describeConnection(b)}, ${b.state}, ${String(b.inFlight)} in flight`).join('\n')}${blockers.length > 10 ? `\n  ... and ${String(blockers.length - 10)} more` : ''}`,
    };
    this.#emitter.emit('shutdown', report);
    return report;
  }

  #stopAccepting(state: ShutdownState): void {
    state.stopped = true;
    state.connectionsAtStart = this.#open.size;
    for (const e of this.#open) state.inFlightAtStart += e.responses.size;
    // Stops accepting; node's http server also closes its idle keep-alive sockets here (node >= 19),
    // unless idleGraceMs keeps the recently used ones for a moment.
    const grace = this.#options.idleGraceMs > 0 && isHttp1(this.server);
    if (grace) (this.server as { closeIdleConnections: () => void }).closeIdleConnections = () => { /* after the grace */ };
    try {
      // Not when it no longer listens: node would emit a second 'close' for a server already closed.
      if (this.server.listening) this.server.close(() => { /* its 'close' ends the guard */ });
    } finally {
      if (grace) Reflect.deleteProperty(this.server, 'closeIdleConnections');
    }
    if (grace) this.#graceIdle(state);
    for (const fn of this.#onShutdown) {
      try {
        fn();
      } catch (error) {
        process.emitWarning(`server guard "${this.name}": an onShutdown function threw: ${String(error)}`, { code: 'LIFEGUARD_HOOK' });
      }
    }
    for (const e of [...this.#open]) {
      if (e.closed) continue;
      if (e.session !== null) {
        state.upgradedClosed++;
        e.session.close(); // GOAWAY: streams in flight finish, no new ones start
      } else if (e.kind === 'http') {
        if (e.responses.size === 0) {
          if (grace) continue; // #graceIdle decides
          // Idle keep-alive: closed at once. Node destroyed most of them in close(); those it kept are
          // mid-request by its parser's account and will get `Connection: close` on their response.
          if (e.socket.destroyed) state.idleClosed++;
          else if (e.socket.bytesRead === 0) {
            state.idleClosed++;
            e.socket.destroy();
          }
        } else this.#markLast(e, state);
      } else {
        this.#closeOther(e);
      }
    }
  }

  /**
   * idleGraceMs: idle keep-alive sockets used within the grace stay open until it ends, so that a request
   * their client is sending gets `Connection: close`; the others, and then these, are closed by node's
   * own closeIdleConnections() (which knows, from its parser, a socket that is mid-request).
   */
  #graceIdle(state: ShutdownState): void {
    const clock = this.#options.clock;
    const now = clock.now();
    const server = this.server as Http1Server;
    let recent = 0;
    for (const e of this.#open) {
      if (e.kind !== 'http' || e.responses.size > 0 || e.socket.destroyed) continue;
      const arriving = (e.socket.bytesRead ?? 0) > e.bytesAtIdle;
      if (!arriving && (e.requests === 0 || now - e.lastActiveAt >= this.#options.idleGraceMs)) {
        state.idleClosed++;
        e.socket.destroy();
      } else recent++;
    }
    if (recent === 0) return;
    // Unref'd: the shutdown's own deadline timer is what keeps the process waiting.
    clock.setTimeout(() => {
      if (this.#closed) return;
      for (const e of this.#open) {
        if (e.kind === 'http' && e.responses.size === 0 && !e.socket.destroyed && (e.socket.bytesRead ?? 0) === e.bytesAtIdle) state.idleClosed++;
      }
      server.closeIdleConnections();
    }, this.#options.idleGraceMs, true);
  }

  #closeOther(e: Entry): void {
    const state = this.#shutdown;
    if (state === null || e.closed) return;
    state.upgradedClosed++;
    const hook = this.#options.closeConnection;
    if (hook === null) {
      e.socket.end();
      return;
    }
    e.socket.on('error', ignore);
    try {
      const result = hook(e.socket, this.#info(e, this.#options.clock.now()));
      if (result instanceof Promise) {
        result.catch((error: unknown) => {
          process.emitWarning(`server guard "${this.name}": closeConnection rejected: ${String(error)}; the socket is ended instead`, { code: 'LIFEGUARD_HOOK' });
          if (!e.closed) e.socket.end();
        });
      }
    } catch (error) {
      process.emitWarning(`server guard "${this.name}": closeConnection threw: ${String(error)}; the socket is ended instead`, { code: 'LIFEGUARD_HOOK' });
      e.socket.end();
    }
  }
}

const listeners = new WeakMap<Duplex, { onEnd: () => void; onClose: () => void }>();

function destroySoon(socket: Duplex): void {
  const s = socket as Duplex & { destroySoon?: () => void };
  if (typeof s.destroySoon === 'function') s.destroySoon();
  else socket.end();
}

/** True once the stream has received its end (EOF), even if the buffered data before it was never read. */
function readableEnded(socket: Duplex): boolean {
  return (socket as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}

/**
 * Bytes a socket handed to the kernel, near enough to see them move: `bytesWritten` less what waits in
 * node's queue and in libuv's (`writeQueueSize` falls as a large write is taken bit by bit, while node's
 * queue still holds it whole until it completes; the chunk being written counts in both, so this may
 * undercount by up to that chunk).
 */
function sentBytes(socket: Socketish): number {
  return Math.max(0, sendProgress(socket));
}

/** Unclamped, so that it moves even while the chunk being written is counted twice. */
function sendProgress(socket: Socketish): number {
  const handle = (socket as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const libuv = typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0;
  return (socket.bytesWritten ?? 0) - socket.writableLength - libuv;
}

function ignore(): void {
  // Errors of a socket the guard ended or destroyed: it already reported why.
}

function describeConnection(info: ConnectionInfo): string {
  return `the ${info.kind} connection from ${info.remote}${info.owner === null ? '' : ` (${info.owner})`}, open ${String(info.ageMs)} ms, ${String(info.bytesIn)} B in / ${String(info.bytesOut)} B out`;
}

/**
 * Guards `server` (net, http, https, tls or http2): tracks every accepted socket, ends half-closed and
 * idle ones, checks keep-alive alignment, and offers `shutdown()`. Guard it before it accepts
 * connections: sockets accepted earlier are not tracked.
 */
export function guardServer(server: net.Server, options?: ServerGuardOptions): ServerGuard {
  return new ServerGuard(server, options);
}
