import { EventEmitter } from 'node:events';
import { Dispatcher } from 'undici';
import type { Pool } from '../pool/pool.js';
import type { HttpConnection } from './connection.js';
import { HttpCore, emitLeak, statsOf, type BodyLeakReport, type HttpStats } from './core.js';
import { resolveHttpPoolOptions, type HttpPoolOptions } from './options.js';
import { PooledRequest, clientOptions, legacyHandler } from './request.js';
import { LifeguardAgent, LifeguardHttpsAgent } from './agent.js';

/** Payloads of the dispatcher's own events (besides undici's). */
export interface HttpDispatcherEvents {
  leak: BodyLeakReport;
}

type Listener = Parameters<EventEmitter['on']>[1];

/** Set only while a scope is being constructed: the core it nests under. */
let scopeParent: HttpCore | null = null;

/**
 * An undici `Dispatcher` that sends every request over a Lifeguard pool of HTTP/1.1 connections: caps
 * per origin and in total, a bounded FIFO queue whose wait counts against the request's deadline,
 * keep-alive that never outlives the server's hint, maximum lifetimes, eviction of idle connections the
 * server closed, response bodies that hold their connection (and are reported, with the request's call
 * site, when left unconsumed), retries, and scopes that close everything a job opened.
 *
 * Works with `undici.request(url, { dispatcher })`, `fetch(url, { dispatcher })` and
 * `setGlobalDispatcher(dispatcher)`.
 */
export class LifeguardDispatcher extends Dispatcher {
  readonly #core: HttpCore;

  constructor(options?: HttpPoolOptions) {
    super();
    const parent = scopeParent;
    scopeParent = null;
    const given = options ?? {};
    this.#core = new HttpCore(resolveHttpPoolOptions(given, parent === null ? 'LifeguardDispatcher' : 'withScope()'), given, parent, (report) => {
      emitLeak(this, report);
    });
  }

  /** @internal The shared state, for the agent. */
  get core(): HttpCore {
    return this.#core;
  }

  get name(): string {
    return this.#core.o.name;
  }

  get closed(): boolean {
    return this.#core.closed;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const core = this.#core;
    const h = legacyHandler(handler);
    if (core.closed) {
      const error = core.closedError('send a request');
      if (h.onError === undefined) throw error;
      h.onError(error);
      return false;
    }
    let entry;
    let opts;
    try {
      // One shape for every request, read by this dispatcher and the pooled Client (see clientOptions).
      opts = clientOptions(options);
      entry = core.entry(opts.origin);
    } catch (error) {
      if (h.onError === undefined) throw error;
      h.onError(error as Error);
      return false;
    }
    const now = core.clock.now();
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only a marker: stack frames above it are dropped
    const site = core.sampler.capture(LifeguardDispatcher.prototype.dispatch, now, entry.active, core.o.connectionsPerOrigin);
    core.counters.requests++;
    new PooledRequest(core, entry, opts, h, site, now).start();
    // Never "busy": queueing (bounded, with deadlines) is the pool's job, not the caller's.
    return true;
  }

  /** Stops taking requests, waits for those in flight (up to `closeTimeoutMs`), then closes every connection. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | undefined {
    const done = this.#core.close();
    if (callback === undefined) return done;
    void done.then(callback);
    return undefined;
  }

  /** Fails every request in flight or waiting with `err` and closes every connection at once. */
  override destroy(err?: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | undefined {
    const err = typeof errOrCallback === 'function' ? null : errOrCallback ?? null;
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = this.#core.destroy(err ?? undefined);
    if (cb === undefined) return done;
    void done.then(cb);
    return undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  override on(event: 'leak', listener: (report: BodyLeakReport) => void): this;
  override on(event: 'connect' | 'disconnect' | 'connectionError' | 'drain', listener: Listener): this;
  override on(event: string, listener: Listener): this {
    EventEmitter.prototype.on.call(this, event, listener);
    return this;
  }

  override once(event: 'leak', listener: (report: BodyLeakReport) => void): this;
  override once(event: 'connect' | 'disconnect' | 'connectionError' | 'drain', listener: Listener): this;
  override once(event: string, listener: Listener): this {
    EventEmitter.prototype.once.call(this, event, listener);
    return this;
  }

  override off(event: 'leak', listener: (report: BodyLeakReport) => void): this;
  override off(event: 'connect' | 'disconnect' | 'connectionError' | 'drain', listener: Listener): this;
  override off(event: string, listener: Listener): this {
    EventEmitter.prototype.off.call(this, event, listener);
    return this;
  }

  stats(): HttpStats {
    return statsOf(this.#core);
  }

  /** The Lifeguard pools behind this dispatcher, one per origin (each also listed by `pools()` of `lifeguard`). */
  pools(): Pool<HttpConnection>[] {
    return this.#core.pools();
  }

  /**
   * An `http.Agent` (for `http.request`, axios, got, the AWS SDK) whose sockets obey this dispatcher's caps:
   * the same connection gate, the same options. Closed with the dispatcher.
   */
  createAgent(): LifeguardAgent {
    if (this.#core.closed) throw this.#core.closedError('create an agent');
    return new LifeguardAgent({ core: this.#core });
  }

  /**
   * The `https:` twin of {@link createAgent} (for `https.request`, axios's `httpsAgent`, got's
   * `agent.https`, the AWS SDK's `httpsAgent`): an `https.Agent` under the same caps, whose TLS defaults
   * are this dispatcher's `tls` option. Closed with the dispatcher.
   */
  createHttpsAgent(): LifeguardHttpsAgent {
    if (this.#core.closed) throw this.#core.closedError('create an agent');
    return new LifeguardHttpsAgent({ core: this.#core });
  }

  /**
   * Runs `fn` with a scope: a dispatcher with its own pools and limits (`options` override this one's),
   * whose connections also count against this dispatcher's caps. When `fn` settles, every connection the
   * scope opened is closed: gracefully (up to `closeTimeoutMs`) when it resolved, at once when it threw.
   */
  withScope<R>(fn: (scope: LifeguardDispatcher) => R | PromiseLike<R>, options?: HttpPoolOptions): Promise<R> {
    if (this.#core.closed) return Promise.reject(this.#core.closedError('open a scope'));
    scopeParent = this.#core;
    let scope: LifeguardDispatcher;
    try {
      scope = new LifeguardDispatcher({ ...this.#core.given, ...(options ?? {}) });
    } finally {
      scopeParent = null;
    }
    return runScope(scope, fn);
  }
}

async function runScope<R>(scope: LifeguardDispatcher, fn: (scope: LifeguardDispatcher) => R | PromiseLike<R>): Promise<R> {
  let result: R;
  try {
    result = await fn(scope);
  } catch (error) {
    await scope.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
  await scope.close();
  return result;
}

/**
 * Runs `fn` with a fresh dispatcher (`options` as for {@link LifeguardDispatcher}) and closes every
 * connection it opened when `fn` settles, even if it throws: a per-job pool (incident 1).
 */
export function withScope<R>(options: HttpPoolOptions, fn: (scope: LifeguardDispatcher) => R | PromiseLike<R>): Promise<R> {
  return runScope(new LifeguardDispatcher(options), fn);
}
