import type { Duplex } from 'node:stream';
import { util as undiciUtil, type Dispatcher } from 'undici';
import type { TimerHandle } from '../internal/clock.js';
import type { Lease } from '../pool/lease.js';
import { ErrorCodes } from '../pool/errors.js';
import { kAcquireInto, kHandOff, kWithdraw, type AcquireReceiver } from '../pool/pool.js';
import type { AcquireSite } from '../leak/site.js';
import { leaseLabel } from './site.js';
import { readConnectionHeaders, undiciWillClose, type HttpConnection } from './connection.js';
import { oldestWaiting, type HttpCore, type OriginEntry, type TrackedResponse } from './core.js';
import { HttpClosedError, HttpErrorCodes, QueueFullError, QueueTimeoutError, RequestDeadlineError } from './errors.js';
import { backoffMs, isConnectionError, isIdempotent, isReplayable, parseRetryAfter, rawHeader } from './retry.js';

/** undici's handler interface as `Client` calls it (the "legacy" callbacks, which undici.request and fetch use). */
export interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  onResponseStarted?(): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | string[] | null): void;
  onError?(error: Error): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void;
  onBodySent?(chunkSize: number, totalBytesSent: number): void;
  onRequestSent?(): void;
}

function parse(raw: Buffer[] | string[] | null): Record<string, string | string[]> {
  return raw === null ? {} : undiciUtil.parseHeaders(raw);
}

/** The controller undici's new handler interface expects, over the legacy `abort` and `resume`. */
class Controller {
  abortFn: ((reason?: Error) => void) | null = null;
  resumeFn: (() => void) | null = null;
  paused = false;
  reason: Error | null = null;

  get aborted(): boolean {
    return this.reason !== null;
  }

  abort(reason?: Error): void {
    this.reason = reason ?? new Error('request aborted');
    this.abortFn?.(this.reason);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.resumeFn?.();
  }
}

/** Presents a handler written against undici's new interface (`onRequestStart`, ...) as a legacy one. */
class ControllerAdapter implements LegacyHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #controller = new Controller();

  constructor(handler: Dispatcher.DispatchHandler) {
    this.#handler = handler;
  }

  get #c(): Dispatcher.DispatchController {
    return this.#controller;
  }

  onConnect(abort: (reason?: Error) => void, context?: unknown): void {
    this.#controller.abortFn = abort;
    this.#handler.onRequestStart?.(this.#c, context);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    this.#controller.resumeFn = resume;
    this.#handler.onResponseStart?.(this.#c, statusCode, parse(rawHeaders), statusText);
    return !this.#controller.paused;
  }

  onData(chunk: Buffer): boolean {
    this.#handler.onResponseData?.(this.#c, chunk);
    return !this.#controller.paused;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.#handler.onResponseEnd?.(this.#c, parse(trailers));
  }

  onError(error: Error): void {
    this.#handler.onResponseError?.(this.#c, error);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    this.#handler.onRequestUpgrade?.(this.#c, statusCode, parse(rawHeaders), socket);
  }
}

export function legacyHandler(handler: Dispatcher.DispatchHandler): LegacyHandler {
  return typeof handler.onRequestStart === 'function' ? new ControllerAdapter(handler) : (handler);
}

/**
 * The options undici's `Request` (core/request.js, which every `Client.dispatch` builds) reads: it
 * destructures exactly these, and the origin is ours to read. Kept in step with undici by a test.
 */
export const CLIENT_REQUEST_FIELDS = [
  'origin', 'path', 'method', 'body', 'headers', 'query', 'idempotent', 'blocking', 'upgrade', 'headersTimeout', 'bodyTimeout',
  'reset', 'expectContinue', 'servername', 'throwOnError', 'maxRedirections', 'typeOfService',
] as const;

/**
 * A copy of a request's dispatch options with one shape for every request: what the dispatcher and the
 * pooled Client read instead of the caller's object. `undici.request()` builds its options with an
 * object spread, and V8 gives each such object a map of its own: every property load of them at a
 * shared site (named or keyed) then misses the megamorphic stub cache and computes a handler in the
 * runtime, about 1,400 instructions each, absent properties included. undici's `Request` reads 16 of
 * them per request: 22,900 instructions a request under callgrind, an eighth of a request's cost (and
 * undici's own Pool pays it too). A `for...in` reads them instead: one runtime call lists the keys of
 * the new map, and `from[key]` inside the loop loads by the listed index, with no inline cache; the
 * switch stores into a literal whose map never changes. Enumerable properties are copied, own or
 * inherited, as every undici API and any options literal has them; absent fields stay undefined, as
 * the destructuring reads them, and fields undici's Request does not read are left out.
 */
export function clientOptions(opts: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  const from = opts as unknown as Record<string, unknown>;
  const to: Record<(typeof CLIENT_REQUEST_FIELDS)[number], unknown> = {
    origin: undefined, path: undefined, method: undefined, body: undefined, headers: undefined, query: undefined, idempotent: undefined,
    blocking: undefined, upgrade: undefined, headersTimeout: undefined, bodyTimeout: undefined, reset: undefined, expectContinue: undefined,
    servername: undefined, throwOnError: undefined, maxRedirections: undefined, typeOfService: undefined,
  };
  for (const key in from) {
    switch (key) {
      case 'origin': to.origin = from[key]; break;
      case 'path': to.path = from[key]; break;
      case 'method': to.method = from[key]; break;
      case 'body': to.body = from[key]; break;
      case 'headers': to.headers = from[key]; break;
      case 'query': to.query = from[key]; break;
      case 'idempotent': to.idempotent = from[key]; break;
      case 'blocking': to.blocking = from[key]; break;
      case 'upgrade': to.upgrade = from[key]; break;
      case 'headersTimeout': to.headersTimeout = from[key]; break;
      case 'bodyTimeout': to.bodyTimeout = from[key]; break;
      case 'reset': to.reset = from[key]; break;
      case 'expectContinue': to.expectContinue = from[key]; break;
      case 'servername': to.servername = from[key]; break;
      case 'throwOnError': to.throwOnError = from[key]; break;
      case 'maxRedirections': to.maxRedirections = from[key]; break;
      case 'typeOfService': to.typeOfService = from[key]; break;
      default: break;
    }
  }
  return to as unknown as Dispatcher.DispatchOptions;
}

/** Most times one request goes back to the queue because a connection died before it was written to it. */
const MAX_UNSENT_RETRIES = 8;

const WAITING = 0;
const RUNNING = 1;
const BACKOFF = 2;
const DONE = 3;

/**
 * One request through the dispatcher: waits for a pooled connection, runs on it, holds its lease until
 * the response body is consumed or cancelled (undici's backpressure stops `onComplete` until then), and
 * retries under the policy. It is itself the handler undici's Client calls.
 *
 * This is the dispatcher's hot path, and what it costs is measured against undici's own Pool: no Set
 * bookkeeping per request (the connection points at its request, the pool's queue lists the waiting
 * ones), three clock reads (dispatch, response headers, and the pool's at release), and no promise.
 */
export class PooledRequest implements LegacyHandler, AcquireReceiver<HttpConnection>, TrackedResponse {
  readonly #core: HttpCore;
  readonly #entry: OriginEntry;
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #handler: LegacyHandler;
  readonly site: AcquireSite | null;
  readonly startedAt: number;
  #state = WAITING;
  /**
   * The receiver of the pool waiter this request is waiting on, or null. A waiter given up on (failed
   * connect, cancel) is withdrawn from the pool, and one already handed a lease hands it back: its
   * outcome must not reach a later attempt. The first attempt receives as `this`; later ones through an
   * Attempt each.
   */
  #current: AcquireReceiver<HttpConnection> | null = null;
  #acquires = 0;
  #attempt = 1;
  #transparentDone = false;
  #label: string | undefined;
  /** Times it went back to the queue because its connection died before it was written. */
  #unsentRetries = 0;
  #wantFresh = false;
  #lease: Lease<HttpConnection> | null = null;
  #conn: HttpConnection | null = null;
  #reused = false;
  #clientAbort: ((reason?: Error) => void) | null = null;
  #userAbort: Error | null = null;
  /** Response headers went to the user: no retry from here on. */
  #responded = false;
  /** A retryable status is being drained; retry after this many ms once it completes. */
  #retryAfterMs = -1;
  /** The status being drained, for messages. */
  #drainStatus = 0;
  /** Set when the deadline cut a drain short: the request ends with it. */
  #deadlineError: Error | null = null;
  #timer: TimerHandle | null = null;
  /** When the response headers arrived (the body-leak clock, and the reference of keep-alive hints). */
  headersAt = 0;
  readAt = NaN;
  bytesSeen = 0;
  leakReported = false;

  constructor(core: HttpCore, entry: OriginEntry, opts: Dispatcher.DispatchOptions, handler: LegacyHandler, site: AcquireSite | null, now: number) {
    this.#core = core;
    this.#entry = entry;
    this.#opts = opts;
    this.#handler = handler;
    this.site = site;
    this.startedAt = now;
    entry.active++;
  }

  /** The request is over (completed, failed, upgraded): it no longer counts as demand on its origin. */
  #over(): void {
    if (this.#state === DONE) return;
    this.#state = DONE;
    this.#entry.active--;
  }

  get method(): string {
    return this.#opts.method;
  }

  get path(): string {
    return this.#opts.path;
  }

  get origin(): string {
    return this.#entry.parts.origin;
  }

  get bytesRead(): number {
    return this.#conn?.socket.bytesRead ?? 0;
  }

  get bodyPending(): boolean {
    return this.#responded && this.#state === RUNNING;
  }

  /** The queue wait counts against it: without a retry policy only the queue wait is bounded. */
  get #deadline(): number {
    return this.startedAt + this.#core.deadlineMs;
  }

  start(): void {
    const handler = this.#handler;
    if (handler.onConnect !== undefined) {
      handler.onConnect((reason?: Error) => {
        this.#abortByUser(reason ?? new Error('request aborted'));
      });
    }
    if (this.#state === DONE) return; // aborted inside onConnect
    this.#acquire();
  }

  /** Cancels a response whose body sits unconsumed (bodyAbandonAfterMs): the connection is destroyed. */
  abandon(error: Error): void {
    if (this.#state === RUNNING) this.#clientAbort?.(error);
  }

  /** Fails this waiting request with a connect error (one failed connect per waiting request, like undici). */
  connectFailed(error: unknown): void {
    if (this.#state !== WAITING) return;
    if (this.#current !== null) this.#entry.pool[kWithdraw](this.#current);
    this.#current = null;
    this.#failOrRetry(error instanceof Error ? error : new Error(String(error)), false);
  }

  /** The dispatcher closed or was destroyed: a request waiting for a connection or a retry ends now. */
  cancel(error: Error): void {
    if (this.#state === BACKOFF) {
      if (this.#timer !== null) this.#core.clock.clearTimeout(this.#timer);
      this.#timer = null;
      this.#finish(error);
    } else if (this.#state === WAITING) {
      if (this.#current !== null) this.#entry.pool[kWithdraw](this.#current);
      this.#current = null;
      this.#finish(error);
    }
  }

  #acquire(): void {
    this.#state = WAITING;
    const core = this.#core;
    const first = this.#acquires++ === 0;
    // The first acquire starts the instant the request was dispatched: its reading of the clock serves.
    const now = first ? this.startedAt : core.clock.now();
    const remaining = this.#deadline - now;
    if (remaining <= 0) {
      this.#finish(new QueueTimeoutError(`request ${this.#describe()} ran out of time: its deadline passed before a connection became free`));
      return;
    }
    // Bounded by the pool's own default deadline whenever that ends first: the pool keeps default
    // deadlines in arrival order, cheaper than a per-call deadline.
    // A captured site becomes the lease's acquire site (the pool's `site` option), and the request its
    // label: the doctor's join (diagnoseSelf()) then names the requesting line for this socket. The
    // pool's own site capture would name undici's frame instead. Formatted only when read.
    const site = this.site;
    const options = site !== null
      ? (remaining >= core.o.acquireTimeoutMs ? { site, label: this.#label ??= leaseLabel(this.method, this.origin, this.path) } : { timeoutMs: remaining, site, label: this.#label ??= leaseLabel(this.method, this.origin, this.path) })
      : (remaining >= core.o.acquireTimeoutMs ? undefined : { timeoutMs: remaining });
    // A receiver instead of a promise: no promise, callbacks or microtask hops per request.
    const receiver: AcquireReceiver<HttpConnection> = first ? this : new Attempt(this);
    this.#current = receiver;
    this.#entry.pool[kAcquireInto](receiver, options, now);
  }

  /** @internal The pool lends this request's first attempt a connection (AcquireReceiver). */
  onLease(lease: Lease<HttpConnection>, now: number): void {
    this.receive(this, lease, now);
  }

  /** @internal The first attempt's pool waiter failed (AcquireReceiver). */
  onAcquireError(error: Error): void {
    this.refused(this, error);
  }

  /** @internal A lease for the attempt `from`, lent at `now`: used if that attempt is still the current one. */
  receive(from: AcquireReceiver<HttpConnection>, lease: Lease<HttpConnection>, now: number): void {
    const conn = lease.resource;
    if (from !== this.#current) {
      conn.giveBack(lease, this.#entry.pool);
      return;
    }
    this.#current = null;
    // Checked here, not only by the pool's validation: the socket may have closed an instant ago, or the
    // retry of a request that failed on a stale reused socket wants one that was never used.
    if (!conn.usable(now) || (this.#wantFresh && conn.requests > 0)) {
      lease.destroy(conn.gone ?? new Error(`connection #${conn.id} to ${conn.origin} is past its keep-alive or was refused for a fresh-connection retry`));
      this.#acquire();
      return;
    }
    this.#wantFresh = false;
    this.#lease = lease;
    this.#conn = conn;
    conn.idle = false;
    conn.parked = false;
    conn.moving = false;
    conn.request = this;
    this.#reused = conn.requests > 0;
    conn.requests++;
    this.#state = RUNNING;
    conn.client.dispatch(this.#opts, this);
  }

  /** @internal The pool could not lend a connection in time to the attempt `from`. */
  refused(from: AcquireReceiver<HttpConnection>, error: Error): void {
    if (from !== this.#current) return;
    this.#current = null;
    const code = (error as { code?: unknown }).code;
    const core = this.#core;
    let wrapped: Error;
    if (code === ErrorCodes.ACQUIRE_TIMEOUT) {
      wrapped = new QueueTimeoutError(`${this.#describe()}: no connection to ${this.origin} became free in time (${error.message.split('\n')[0] ?? ''})\n${core.holders(this.#entry)}`, { cause: error });
    } else if (code === ErrorCodes.QUEUE_FULL) {
      wrapped = new QueueFullError(`${this.#describe()}: rejected at once, the queue of ${this.origin} is full (maxWaiting=${core.o.maxWaiting})`, { cause: error });
    } else if (code === ErrorCodes.POOL_CLOSED) {
      wrapped = new HttpClosedError(`${this.#describe()}: the dispatcher "${core.o.name}" was closed`, { cause: error });
    } else {
      wrapped = error instanceof Error ? error : new Error(String(error));
    }
    this.#finish(wrapped);
  }

  #describe(): string {
    return `${this.method} ${this.origin}${this.#opts.path}`;
  }

  #abortByUser(reason: Error): void {
    if (this.#state === DONE) return;
    this.#userAbort = reason;
    if (this.#state === RUNNING) {
      if (this.#clientAbort !== null) this.#clientAbort(reason);
      return;
    }
    this.cancel(reason);
  }

  // ---------------------------------------------------------------------------------------------------
  // Handler callbacks, called by undici's Client

  onConnect(abort: (reason?: Error) => void): void {
    this.#clientAbort = abort;
    if (this.#userAbort !== null) abort(this.#userAbort);
  }

  onResponseStarted(): void {
    if (this.#retryAfterMs < 0) this.#handler.onResponseStarted?.();
  }

  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#handler.onBodySent?.(chunkSize, totalBytesSent);
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return this.#handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
    const core = this.#core;
    const now = core.clock.now();
    this.headersAt = now;
    const conn = this.#conn as HttpConnection;
    readConnectionHeaders(conn, rawHeaders, core.o.keepAliveSafetyMarginMs, now);
    // undici decided to close the socket after this response (HTTP/1.0 without keep-alive, and whatever
    // else it knows): it must not be lent again in the instant between this response and that close.
    if (undiciWillClose(conn.socket)) conn.reusable = false;
    const retry = core.o.retry;
    if (retry !== null && retry.statuses.has(statusCode) && this.#userAbort === null) {
      const delay = this.#retryDelay(rawHeaders, now);
      if (delay >= 0) {
        // Drained, not shown to the user: the connection stays reusable and the request is sent again.
        this.#retryAfterMs = delay;
        this.#drainStatus = statusCode;
        // The drain is bounded by the deadline: a body that stalls must not hold the caller past it.
        this.#timer = core.clock.setTimeout(() => {
          this.#timer = null;
          this.#deadlineError = new RequestDeadlineError(`${this.#describe()}: its deadline (retry.deadlineMs=${core.deadlineMs}) passed while draining the body of a retryable ${statusCode} response before retrying it (attempt ${this.#attempt} of ${core.o.retry?.maxAttempts ?? 1}); the connection was closed`);
          this.#clientAbort?.(this.#deadlineError);
        }, this.#deadline - now, false);
        return true;
      }
    }
    this.#responded = true;
    return this.#handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#retryAfterMs >= 0) return true;
    return this.#handler.onData?.(chunk) ?? true;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.#endLease(null);
    if (this.#retryAfterMs >= 0) {
      this.#clearTimer();
      this.#retryDrained();
      return;
    }
    this.#over();
    this.#handler.onComplete?.(trailers);
  }

  onError(error: Error): void {
    this.#endLease(error);
    if (this.#retryAfterMs >= 0) this.#clearTimer();
    if (this.#deadlineError !== null) {
      this.#retryAfterMs = -1;
      this.#finish(this.#deadlineError);
      return;
    }
    if (this.#retryAfterMs >= 0 && this.#userAbort === null) {
      // The retryable response itself broke while being drained: the retry was decided already.
      this.#retryDrained();
      return;
    }
    this.#retryAfterMs = -1;
    if (this.#responded || this.#userAbort !== null) {
      this.#finish(this.#userAbort ?? error);
      return;
    }
    this.#failOrRetry(error, this.#reused);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    const conn = this.#conn;
    // The socket now belongs to the caller (CONNECT, WebSocket): it leaves the pool without being closed.
    if (conn !== null) conn.detached = true;
    this.#endLease(new Error('connection upgraded and handed to the caller'));
    this.#over();
    this.#handler.onUpgrade?.(statusCode, rawHeaders, socket);
  }

  // ---------------------------------------------------------------------------------------------------

  /** Delay before retrying a retryable status, or -1 when it must not be retried (the response is shown). */
  #retryDelay(rawHeaders: Buffer[], now: number): number {
    const retry = this.#core.o.retry;
    if (retry === null || this.#attempt >= retry.maxAttempts || !this.#retryable()) return -1;
    let delay = backoffMs(retry, this.#attempt);
    if (retry.honorRetryAfter) {
      const header = rawHeader(rawHeaders, 'retry-after');
      const after = header === null ? null : parseRetryAfter(header);
      if (after !== null) delay = Math.max(delay, after);
    }
    return now + delay < this.#deadline ? delay : -1;
  }

  #retryable(): boolean {
    const retry = this.#core.o.retry;
    return isReplayable(this.#opts.body) && (isIdempotent(this.method) || retry?.retryNonIdempotent === true);
  }

  /** A retryable response was drained (or broke while draining): retry after the delay decided then. */
  #retryDrained(): void {
    const delay = this.#retryAfterMs;
    this.#retryAfterMs = -1;
    if (this.#core.closed) {
      this.#finish(this.#core.closedError('retry a request'));
      return;
    }
    const now = this.#core.clock.now();
    if (now + delay >= this.#deadline) {
      this.#finish(new RequestDeadlineError(`${this.#describe()}: a retryable ${this.#drainStatus} response took until ${Math.round(now - this.startedAt)} ms to drain; a retry after ${delay} ms more would pass its deadline (retry.deadlineMs=${this.#core.deadlineMs}), so it was not retried (attempt ${this.#attempt} of ${this.#core.o.retry?.maxAttempts ?? 1})`));
      return;
    }
    this.#core.counters.retries++;
    this.#attempt++;
    this.#backoff(delay);
  }

  #failOrRetry(error: Error, reused: boolean): void {
    const core = this.#core;
    // Closed or destroyed under us: no retry may start (its timer would outlive the dispatcher).
    if (core.closed) {
      this.#finish(error);
      return;
    }
    // The Client found its socket gone before writing a byte of this request: the server never saw it,
    // so it goes again on another connection whatever its method (bounded: each try needs a connection
    // that was alive when lent, and the deadline still holds).
    if ((error as { code?: unknown }).code === HttpErrorCodes.CONNECTION_GONE && this.#unsentRetries < MAX_UNSENT_RETRIES && isReplayable(this.#opts.body)) {
      this.#unsentRetries++;
      core.counters.transparentRetries++;
      this.#acquire();
      return;
    }
    // A reused connection that fails before any response byte was most likely closed by the server
    // while idle: once, transparently, on a connection that was never used.
    if (reused && !this.#transparentDone && isIdempotent(this.method) && isReplayable(this.#opts.body)) {
      this.#transparentDone = true;
      this.#wantFresh = true;
      core.counters.transparentRetries++;
      this.#acquire();
      return;
    }
    const retry = core.o.retry;
    if (retry !== null && retry.onConnectionError && isConnectionError(error) && this.#attempt < retry.maxAttempts && this.#retryable()) {
      const delay = backoffMs(retry, this.#attempt);
      if (core.clock.now() + delay < this.#deadline) {
        this.#attempt++;
        core.counters.retries++;
        this.#backoff(delay);
        return;
      }
    }
    this.#finish(error);
  }

  #clearTimer(): void {
    if (this.#timer !== null) this.#core.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #backoff(delay: number): void {
    this.#state = BACKOFF;
    if (delay <= 0) {
      this.#acquire();
      return;
    }
    this.#core.backingOff.add(this);
    // Ref'd: the caller awaits this request, so the process must not exit during its backoff.
    this.#timer = this.#core.clock.setTimeout(() => {
      this.#timer = null;
      this.#core.backingOff.delete(this);
      if (this.#state === BACKOFF) this.#acquire();
    }, delay, false);
  }

  #endLease(error: Error | null): void {
    const lease = this.#lease;
    const conn = this.#conn;
    this.#lease = null;
    this.#conn = null;
    this.#clientAbort = null;
    if (conn === null || lease === null) return;
    if (conn.request === this) conn.request = null;
    // The pool may have taken the connection back already (closed or destroyed while the request ran).
    if (!lease.active) return;
    // The headers' reading of the clock: a socket that broke since is seen by usable() all the same,
    // while a keep-alive hint that ran out during a long body is caught when the connection is lent
    // again: the pool then passes receive() a fresh reading (its pools have `validate`, so it reads the
    // clock precisely at release and at lend), and the gate's "idle since" is the release's reading.
    if (error === null && conn.usable(this.headersAt)) {
      const pool = this.#entry.pool;
      // Fair under a shared total cap: an older request waiting for a slot elsewhere (another scope or
      // origin) gets this connection's slot; the requests of this pool wait their turn at the gate.
      const gate = this.#core.gate;
      if (gate.waitingAnywhere) {
        const mine = oldestWaiting(pool);
        // Same origin (another scope): the slot goes with the open connection itself, which this pool
        // drops without closing (its destroy leaves a connection that has another home).
        if (gate.handOver(conn, mine ?? Infinity)) {
          // The handover told this pool the connection moved: releasing the lease drops it (reason 'moved').
          lease.release();
          return;
        }
        if (mine !== undefined && gate.olderWaiterElsewhere(conn.origin, mine)) {
          lease.destroy(new Error(`connection #${conn.id} to ${conn.origin} closed to free its slot for an older request waiting elsewhere under the shared cap`));
          return;
        }
      }
      // Requests waiting: the connection goes straight to the oldest (with a fresh reading of the clock
      // for its keep-alive check), without a release and a new lend.
      if (!pool[kHandOff](lease)) conn.giveBack(lease, pool);
    } else {
      lease.destroy(error ?? conn.gone ?? new Error(`connection #${conn.id} to ${conn.origin} is not reusable (Connection: close or keep-alive timeout reached)`));
    }
  }

  #finish(error: Error): void {
    this.#over();
    this.#core.backingOff.delete(this);
    if (this.#handler.onError === undefined) throw error;
    this.#handler.onError(error);
  }
}

/** A later acquire attempt of a request (a retry): a receiver of its own, so that a pool waiter given up on earlier is never mistaken for it. */
class Attempt implements AcquireReceiver<HttpConnection> {
  readonly request: PooledRequest;

  constructor(request: PooledRequest) {
    this.request = request;
  }

  onLease(lease: Lease<HttpConnection>, now: number): void {
    this.request.receive(this, lease, now);
  }

  onAcquireError(error: Error): void {
    this.request.refused(this, error);
  }
}

/** The request behind a pool waiter of the dispatcher (its first attempt, or a later one), or null. */
export function requestOf(receiver: AcquireReceiver<HttpConnection>): PooledRequest | null {
  if (receiver instanceof PooledRequest) return receiver;
  if (receiver instanceof Attempt) return receiver.request;
  return null;
}
