/**
 * What the three driver adapters have in common: loading an optional driver, option validation, a connect
 * deadline that destroys the half-open connection, watching a live connection for its death, and closing one
 * without ever leaving its socket open.
 */
import { InvalidOptionError } from '../pool/errors.js';
import { Pool } from '../pool/pool.js';
import { describe, rejectUnknownKeys, type CreateContext, type Factory, type PoolOptions } from '../pool/options.js';
import { durationOption } from '../internal/options.js';
import { ConnectTimeoutError, ConnectionLostError, DriverMissingError } from './errors.js';

/** Options every adapter factory takes. */
export interface ConnectOptions {
  /**
   * Deadline of one connection attempt (TCP connect, TLS, authentication, session setup). Past it, or when
   * the pool aborts the create (`createTimeoutMs`, `destroy()`), the half-open connection is destroyed and
   * the create rejects with `LG_CONNECT_TIMEOUT` (or the abort reason). `Infinity`: no deadline of its own.
   * @default 10000
   */
  readonly connectTimeoutMs?: number;
}

/** How long `destroy` waits for a polite goodbye (Terminate, COM_QUIT, QUIT) before destroying the socket. */
export const GOODBYE_GRACE_MS = 1000;

/**
 * A driver's module with one export replaced by the drop-in's, for the drop-in module's default export
 * (`import pg from 'lifeguard/pg'`): every other name reads through to the driver, which is left unchanged.
 */
export function withDropIn<M extends object, K extends keyof M & string, V>(driver: M, key: K, value: V): Omit<M, K> & { readonly [P in K]: V } {
  return Object.create(driver, { [key]: { value, enumerable: true } }) as Omit<M, K> & { readonly [P in K]: V };
}

/**
 * Imports an optional peer dependency. Adapters call it at module load (top-level await), so importing
 * `lifeguard/pg` without `pg` fails at once with `LG_DRIVER_MISSING` naming the package, instead of at
 * the first connection attempt.
 */
export async function loadDriver<M>(importer: () => Promise<M>, packageName: string, adapter: string): Promise<M> {
  try {
    return await importer();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : '';
    // Only "the package itself is absent": a driver that is installed but throws while loading is a
    // different problem, reported as is.
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${packageName}'`)) {
      throw new DriverMissingError(packageName, adapter, { cause: error });
    }
    throw error;
  }
}

// Compile-time complete: adding an option to PoolOptions fails the build here until it is listed, so the
// adapters' "unknown option" check never rejects a real pool option.
const POOL_OPTION_KEYS: Readonly<Record<Exclude<keyof PoolOptions<unknown>, 'factory'>, true>> = {
  name: true, max: true, min: true, acquireTimeoutMs: true, maxWaiting: true, createTimeoutMs: true,
  maxConcurrentCreates: true, createRetryInitialDelayMs: true, createRetryMaxDelayMs: true, destroyTimeoutMs: true,
  validateAfterIdleMs: true, validateTimeoutMs: true, idleTimeoutMs: true, maxLifetimeMs: true,
  maxLifetimeJitterMs: true, keepAliveIntervalMs: true, idleOrder: true, housekeepingIntervalMs: true,
  leakDetection: true, leakSampleRate: true, leakWarnAfterMs: true, reclaimAfterMs: true, clock: true, budget: true,
};

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('options', `invalid options for ${what}: expected an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Checks the options of a `create<Driver>Pool()` call: every key must be an adapter option or a pool option
 * (the error lists both). Returns the adapter's own options and the pool's, separated; the pool validates
 * its own values when constructed.
 */
function splitPoolOptions(options: unknown, adapterKeys: readonly string[], what: string): { adapter: Record<string, unknown>; pool: Record<string, unknown> } {
  const source = asRecord(options, what);
  if ('factory' in source) {
    throw new InvalidOptionError('factory', `invalid option "factory" for ${what}: the adapter supplies the factory; to compose your own, pass the adapter's factory function's result to new Pool() instead`);
  }
  rejectUnknownKeys(source, new Set([...adapterKeys, ...Object.keys(POOL_OPTION_KEYS)]), what);
  const adapter: Record<string, unknown> = {};
  const pool: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (adapterKeys.includes(key)) adapter[key] = value;
    else pool[key] = value;
  }
  return { adapter, pool };
}

/**
 * What every `create<Driver>Pool(options)` does: checks the keys, builds the adapter's factory from its own
 * options, and hands every other option to the pool, which validates their values.
 */
export function adapterPool<T>(options: unknown, adapterKeys: readonly string[], what: string, makeFactory: (adapterOptions: Record<string, unknown>) => Factory<T>): Pool<T> {
  const { adapter, pool } = splitPoolOptions(options, adapterKeys, what);
  return new Pool<T>({ ...(pool as Omit<PoolOptions<T>, 'factory'>), factory: makeFactory(adapter) });
}

/** Checks the options of a `<driver>Factory()` call: only the adapter's own keys. */
export function factoryOptions(options: unknown, adapterKeys: readonly string[], what: string): Record<string, unknown> {
  const source = asRecord(options, what);
  rejectUnknownKeys(source, new Set(adapterKeys), what);
  return source;
}

/** Reads `connectTimeoutMs`: at most 2^31-1 ms (a longer timer would fire after 1 ms), or Infinity. */
export function connectTimeoutOption(source: Record<string, unknown>): number {
  return durationOption(source, 'connectTimeoutMs', 10_000, { min: 1, allowInfinity: true });
}

/** Reads a one-of-strings option. */
export function choiceOption<V extends string>(source: Record<string, unknown>, key: string, values: readonly V[], fallback: V): V {
  const value = source[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    throw new InvalidOptionError(key, `invalid option "${key}": expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(value)}`);
  }
  return value as V;
}

/**
 * Reads the driver's own connection options (`connection`): an object (or undefined), none of whose
 * `managed` keys are set; each maps to why the adapter owns it.
 */
export function driverOptions(source: Record<string, unknown>, managed: Readonly<Record<string, string>>, adapter: string): Record<string, unknown> {
  const value = source['connection'];
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('connection', `invalid option "connection": expected an object of the driver's connection options, got ${describe(value)}`);
  }
  for (const [key, why] of Object.entries(managed)) {
    if ((value as Record<string, unknown>)[key] !== undefined) {
      throw new InvalidOptionError(`connection.${key}`, `invalid option "connection.${key}": ${adapter} manages it: ${why}; got ${describe((value as Record<string, unknown>)[key])}`);
    }
  }
  return value as Record<string, unknown>;
}

/**
 * Runs `connect()` under the connect deadline and the create's abort signal. On timeout, abort or
 * failure, `abandon()` destroys whatever was half-opened; a connection that completes after the deadline
 * is abandoned too. The timer and the abort listener are removed on every path. A driver error no retry
 * can fix soon ({@link isPermanentDriverError}: a wrong password, an unknown database or role) is marked
 * permanent, so the pool fails waiting acquires with it at once instead of at their deadline.
 */
export function connectWithin<T>(what: string, context: Pick<CreateContext, 'signal' | 'permanent'>, timeoutMs: number, connect: () => Promise<T>, abandon: () => void): Promise<T> {
  const { signal } = context;
  if (signal.aborted) {
    abandon();
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      settle();
    };
    const fail = (error: Error): void => {
      finish(() => {
        abandon();
        reject(isPermanentDriverError(error) ? context.permanent(error) : error);
      });
    };
    const onAbort = (): void => {
      fail(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== Infinity) {
      timer = setTimeout(() => {
        fail(new ConnectTimeoutError(`${what}: not connected within connectTimeoutMs=${timeoutMs}; the half-open connection was destroyed`));
      }, timeoutMs);
    }
    let attempt: Promise<T>;
    try {
      attempt = connect();
    } catch (error) {
      fail(error as Error);
      return;
    }
    attempt.then((value) => { finish(() => { resolve(value); }); }, fail);
  });
}

/** `work`, or a rejection with the signal's reason once it aborts (the pool then destroys the connection). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}

/**
 * Ends a connection: waits up to {@link GOODBYE_GRACE_MS} for the driver's polite close, then destroys
 * the socket regardless, so a connection never outlives its `destroy` (no socket handle left behind,
 * even when the server stopped answering).
 */
export async function closeConnection(goodbye: () => Promise<unknown>, kill: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(goodbye).catch(() => undefined),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, GOODBYE_GRACE_MS); }),
    ]);
  } finally {
    clearTimeout(timer);
    kill();
  }
}

/** The part of an event emitter the watch uses (drivers declare their emitters in various ways). */
export interface Emitter {
  on(event: string, listener: (arg: unknown) => void): unknown;
  once(event: string, listener: (arg: unknown) => void): unknown;
}

/**
 * Watches one live connection for the signs of its death and reports the first through
 * `CreateContext.invalidate`: the pool then destroys it at once when idle, or when its lease ends. Nothing
 * is reported once the adapter itself is closing the connection.
 */
export class ConnectionWatch {
  readonly #describe: () => string;
  readonly #invalidate: (reason: unknown) => void;
  #lost: ConnectionLostError | null = null;
  #closing = false;

  constructor(describeConnection: () => string, invalidate: (reason: unknown) => void) {
    this.#describe = describeConnection;
    this.#invalidate = invalidate;
  }

  /** Why the connection is unusable, once it is. */
  get lost(): ConnectionLostError | null {
    return this.#lost;
  }

  /** The adapter is closing the connection on purpose: its death is not news. */
  closing(): void {
    this.#closing = true;
  }

  /** Reports the connection dead (first report wins). */
  report(what: string, cause?: unknown): void {
    if (this.#closing || this.#lost !== null) return;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    this.#lost = new ConnectionLostError(`${this.#describe()} ${what}${detail}; it is destroyed and never lent again`, cause === undefined ? undefined : { cause });
    this.#invalidate(this.#lost);
  }

  /**
   * Listens on the driver's emitter for `error` and its end event, and on the socket for `end` (the peer's
   * FIN: the server closed it, even a half-close) and `close`. The listeners stay for the connection's
   * life: a driver that emits `error` after close must still find a listener, or the process would crash.
   */
  watch(driver: Emitter, socket: Emitter | null): void {
    this.watchDriver(driver);
    this.watchSocket(socket);
  }

  /** The driver's side: `error`, and `endEvent` (emitted once the driver considers the connection over). */
  watchDriver(driver: Emitter, endEvent = 'end'): void {
    driver.on('error', (error: unknown) => { this.report('failed', error); });
    driver.once(endEvent, () => { this.report('was closed'); });
  }

  /** The socket's side, for drivers that create it late. */
  watchSocket(socket: Emitter | null): void {
    if (socket === null) return;
    socket.once('end', () => { this.report('was closed by the server'); });
    socket.once('close', () => { this.report('lost its socket'); });
  }
}

/**
 * True for a driver error no retry can fix soon: wrong credentials, an unknown database or role
 * (PostgreSQL 28P01, 28000, 3D000; MySQL 1045, 1044, 1049; Redis NOAUTH, WRONGPASS). An adapter's create
 * passes such an error through `CreateContext.permanent`, so waiting acquires fail at once.
 */
export function isPermanentDriverError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errno, message } = error as { code?: unknown; errno?: unknown; message?: unknown };
  if (code === '28P01' || code === '28000' || code === '3D000') return true;
  if (errno === 1045 || errno === 1044 || errno === 1049) return true;
  return typeof message === 'string' && /^(NOAUTH|WRONGPASS)\b/.test(message);
}

/** What `drained()` needs of a client: a pg `Client`, emitting `drain` once idle and `end` once closed. */
interface DrainingClient {
  on(event: 'drain' | 'end', listener: () => void): unknown;
  off(event: 'drain' | 'end', listener: () => void): unknown;
}

/** Resolves when a pg client has no query running or queued, or has ended. */
export function drained(client: DrainingClient): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      client.off('drain', done);
      client.off('end', done);
      resolve();
    };
    client.on('drain', done);
    client.on('end', done);
  });
}
