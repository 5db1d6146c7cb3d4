import type { Budget } from '../budget/index.js';
import type { Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../pool/errors.js';
import type { LeakDetectionMode } from '../pool/options.js';
import { describe, numberOption, rejectUnknownKeys } from '../pool/options.js';
import { durationOption } from '../internal/options.js';

/** When and how a failed request is tried again. */
export interface RetryOptions {
  /** Most attempts in total, the first included (1: never retry). @default 3 */
  readonly maxAttempts?: number;
  /** Backoff ceiling before the first retry; doubles per attempt, full jitter (a random delay up to it). @default 100 */
  readonly initialDelayMs?: number;
  /** Largest backoff ceiling. @default 5000 */
  readonly maxDelayMs?: number;
  /** Overall deadline of a request, from dispatch to response headers, queue waits and retries included. @default 30000 */
  readonly deadlineMs?: number;
  /** Response statuses that mean "busy, try again". Add 401 for a registry that answers 401 at its connection cap. @default [429, 502, 503, 504] */
  readonly statuses?: readonly number[];
  /** Retry connection errors (refused, reset, closed) that happen before any response byte. @default true */
  readonly onConnectionError?: boolean;
  /** Also retry POST, PATCH and other non-idempotent methods. Only replayable bodies are ever retried. @default false */
  readonly retryNonIdempotent?: boolean;
  /** Honour a `Retry-After` header (seconds or HTTP date), as long as it fits in the deadline. @default true */
  readonly honorRetryAfter?: boolean;
}

export interface ResolvedRetryOptions {
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly deadlineMs: number;
  readonly statuses: ReadonlySet<number>;
  readonly onConnectionError: boolean;
  readonly retryNonIdempotent: boolean;
  readonly honorRetryAfter: boolean;
}

/** Options of the HTTP dispatcher, agent and scopes. Every duration is in milliseconds. */
export interface HttpPoolOptions {
  /** Name used in pool names (`<name> <origin>`), messages and events. @default "http" */
  readonly name?: string;
  /** Most connections to one origin (scheme, host and port). @default 10 */
  readonly connectionsPerOrigin?: number;
  /** Most connections across all origins. In a scope, the scope's connections also count against its parent's caps. @default 256 */
  readonly maxConnections?: number;
  /** Most requests waiting for a connection, per origin; one more fails at once with `LG_HTTP_QUEUE_FULL`. @default 1024 */
  readonly maxWaiting?: number;
  /** Longest wait for a connection (queueing and connecting); also bounded by the retry deadline. @default 30000 */
  readonly acquireTimeoutMs?: number;
  /** Deadline of one TCP (and TLS) connect. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Close a connection idle this long. The server's `Keep-Alive: timeout=` hint lowers it per connection. @default 30000 */
  readonly idleTimeoutMs?: number;
  /** Never keep an idle connection closer than this to the end of the server's keep-alive timeout. @default 1000 */
  readonly keepAliveSafetyMarginMs?: number;
  /** Close a connection this old (when idle; a busy one when its response completes). 0: never. @default 600000 */
  readonly maxLifetimeMs?: number;
  /** Each connection's lifetime is shortened by a random amount up to this, so they do not expire together. @default maxLifetimeMs / 20 */
  readonly maxLifetimeJitterMs?: number;
  /** Time to wait for response headers on a connection (undici's `headersTimeout`). @default 300000 */
  readonly headersTimeoutMs?: number;
  /** Longest gap between two body chunks (undici's `bodyTimeout`). @default 300000 */
  readonly bodyTimeoutMs?: number;
  /** Raise a `leak` event for a response body left unconsumed this long, with the call site of the request. 0: never. @default 60000 */
  readonly bodyLeakWarnAfterMs?: number;
  /** Cancel a response body left unconsumed this long and destroy its connection. 0: never. @default 0 */
  readonly bodyAbandonAfterMs?: number;
  /** Call-site capture for leak reports: `off`, `sampled` (a fraction, every request once a leak was seen), `full`. @default 'sampled' */
  readonly leakDetection?: LeakDetectionMode;
  /** Fraction of requests whose call site is captured in `sampled` mode. @default 0.001 (one in 1,000; every request for 5 minutes after a leak) */
  readonly leakSampleRate?: number;
  /** Retry policy, or `false` for none (the transparent retry of a stale reused connection stays on). @default {} (the defaults of {@link RetryOptions}) */
  readonly retry?: RetryOptions | false;
  /** TLS options for https origins (`ca`, `rejectUnauthorized`, `servername`, ...), passed to undici's `buildConnector`. @default {} */
  readonly tls?: Readonly<Record<string, unknown>>;
  /** How long `close()` (and the end of a scope) waits for requests in flight before destroying their connections. @default 30000 */
  readonly closeTimeoutMs?: number;
  /** Time source, for tests. @default the system's monotonic clock */
  readonly clock?: Clock;
  /**
   * A connection budget (`lifeguard/budget`: `createBudget(n)` in one process, a `RedisBudget` across a
   * fleet): each connection is opened only with a permit, held until the socket is closed. One budget for
   * every origin, or per origin: a `Map` or object keyed by origin (`https://host:port`), or a function of
   * the origin (`undefined`: no budget for it). Waiting for a permit counts against the request's deadline;
   * a permit reported lost closes its connection at once. @default none
   */
  readonly budget?: HttpBudgetOption;
}

/** The `budget` option: one budget for all origins, or one per origin. */
export type HttpBudgetOption = Budget | ReadonlyMap<string, Budget> | Readonly<Record<string, Budget>> | ((origin: string) => Budget | undefined);

export interface ResolvedHttpPoolOptions {
  readonly closeTimeoutMs: number;
  readonly name: string;
  readonly connectionsPerOrigin: number;
  readonly maxConnections: number;
  readonly maxWaiting: number;
  readonly acquireTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveSafetyMarginMs: number;
  readonly maxLifetimeMs: number;
  readonly maxLifetimeJitterMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly bodyLeakWarnAfterMs: number;
  readonly bodyAbandonAfterMs: number;
  readonly leakDetection: LeakDetectionMode;
  readonly leakSampleRate: number;
  readonly retry: ResolvedRetryOptions | null;
  readonly tls: Readonly<Record<string, unknown>>;
  readonly clock: Clock | undefined;
  /** The budget of an origin (its `URL#origin`), or undefined. */
  readonly budgetFor: ((origin: string) => Budget | undefined) | null;
}

const KNOWN = new Set([
  'name', 'connectionsPerOrigin', 'maxConnections', 'maxWaiting', 'acquireTimeoutMs', 'connectTimeoutMs', 'idleTimeoutMs',
  'keepAliveSafetyMarginMs', 'maxLifetimeMs', 'maxLifetimeJitterMs', 'headersTimeoutMs', 'bodyTimeoutMs',
  'bodyLeakWarnAfterMs', 'bodyAbandonAfterMs', 'leakDetection', 'leakSampleRate', 'retry', 'tls', 'closeTimeoutMs', 'clock', 'budget',
]);
const RETRY_KNOWN = new Set(['maxAttempts', 'initialDelayMs', 'maxDelayMs', 'deadlineMs', 'statuses', 'onConnectionError', 'retryNonIdempotent', 'honorRetryAfter']);

function fail(option: string, expected: string, given: unknown): never {
  throw new InvalidOptionError(option, `invalid option "${option}": expected ${expected}, got ${describe(given)}`);
}

function booleanOption(source: Record<string, unknown>, key: string, fallback: boolean, prefix = ''): boolean {
  const value = source[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(prefix + key, 'a boolean', value);
  return value;
}

function objectOption(value: unknown, option: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(option, 'an object', value);
  return value as Record<string, unknown>;
}

/** Prefixes the option name of an error thrown while reading a nested object (`retry.maxAttempts`). */
function nested<R>(prefix: string, read: () => R): R {
  try {
    return read();
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      throw new InvalidOptionError(prefix + error.option, error.message.replace(`"${error.option}"`, `"${prefix}${error.option}"`));
    }
    throw error;
  }
}

export function resolveRetryOptions(value: unknown): ResolvedRetryOptions | null {
  if (value === false) return null;
  const source = objectOption(value ?? {}, 'retry');
  return nested('retry.', () => {
    rejectUnknownKeys(source, RETRY_KNOWN, 'retry');
    const initialDelayMs = numberOption(source, 'initialDelayMs', 100, { min: 1 });
    const maxDelayMs = numberOption(source, 'maxDelayMs', Math.max(5000, initialDelayMs), { min: 1 });
    if (maxDelayMs < initialDelayMs) fail('maxDelayMs', `a number >= initialDelayMs (${initialDelayMs})`, maxDelayMs);
    const statuses = source['statuses'] ?? [429, 502, 503, 504];
    if (!Array.isArray(statuses)) fail('statuses', 'an array of HTTP status codes (integers 100-599)', statuses);
    const bad = statuses.findIndex((s) => !Number.isInteger(s) || (s as number) < 100 || (s as number) > 599);
    if (bad >= 0) fail('statuses', `an array of HTTP status codes (integers 100-599), but [${bad}] is not one`, statuses[bad]);
    return Object.freeze({
      maxAttempts: numberOption(source, 'maxAttempts', 3, { integer: true, min: 1 }),
      initialDelayMs,
      maxDelayMs,
      deadlineMs: durationOption(source, 'deadlineMs', 30_000, { min: 1, allowInfinity: true }),
      statuses: new Set(statuses as number[]),
      onConnectionError: booleanOption(source, 'onConnectionError', true),
      retryNonIdempotent: booleanOption(source, 'retryNonIdempotent', false),
      honorRetryAfter: booleanOption(source, 'honorRetryAfter', true),
    });
  });
}

function isBudget(value: unknown): value is Budget {
  const b = value as Partial<Budget> | null;
  return typeof value === 'object' && b !== null && typeof b.acquire === 'function' && typeof b.stats === 'function' && typeof b.close === 'function';
}

const BUDGET_EXPECTED = 'a budget (createBudget(n) or a RedisBudget), a Map or object of budgets keyed by origin, or a function of the origin';

/** Normalizes an origin key of a per-origin budget map (`http://Host:80/` is `http://host`). */
function originKey(key: string, option: string): string {
  let url: URL;
  try {
    url = new URL(key);
  } catch {
    fail(option, 'origins as keys (like "https://registry.example:443")', key);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(option, 'http: or https: origins as keys', key);
  return url.origin;
}

export function resolveBudget(value: unknown): ((origin: string) => Budget | undefined) | null {
  if (value === undefined) return null;
  if (isBudget(value)) return () => value;
  if (typeof value === 'function') {
    const fn = value as (origin: string) => unknown;
    return (origin) => {
      const b = fn(origin);
      if (b === undefined || b === null) return undefined;
      if (!isBudget(b)) fail('budget', `the budget function to return a budget or undefined for ${origin}`, b);
      return b;
    };
  }
  let entries: [string, unknown][];
  if (value instanceof Map) entries = [...(value as Map<unknown, unknown>)].map(([k, v]) => [String(k), v]);
  else if (typeof value === 'object' && value !== null && !Array.isArray(value)) entries = Object.entries(value);
  else fail('budget', BUDGET_EXPECTED, value);
  const byOrigin = new Map<string, Budget>();
  for (const [key, budget] of entries) {
    if (!isBudget(budget)) fail(`budget[${JSON.stringify(key)}]`, 'a budget (createBudget(n) or a RedisBudget)', budget);
    byOrigin.set(originKey(key, `budget[${JSON.stringify(key)}]`), budget);
  }
  return (origin) => byOrigin.get(origin);
}

export function resolveHttpPoolOptions(options: HttpPoolOptions | undefined, what: string): ResolvedHttpPoolOptions {
  const source = objectOption(options ?? {}, 'options');
  rejectUnknownKeys(source, KNOWN, what);
  const name = source['name'] ?? 'http';
  if (typeof name !== 'string' || name.length === 0) fail('name', 'a non-empty string', name);
  const maxLifetimeMs = numberOption(source, 'maxLifetimeMs', 600_000);
  const maxLifetimeJitterMs = numberOption(source, 'maxLifetimeJitterMs', Math.floor(maxLifetimeMs / 20));
  if (maxLifetimeMs > 0 && maxLifetimeJitterMs >= maxLifetimeMs) fail('maxLifetimeJitterMs', `a number < maxLifetimeMs (${maxLifetimeMs})`, maxLifetimeJitterMs);
  const leakDetection = source['leakDetection'] ?? 'sampled';
  if (leakDetection !== 'off' && leakDetection !== 'sampled' && leakDetection !== 'full') fail('leakDetection', 'one of "off", "sampled", "full"', leakDetection);
  const leakSampleRate = numberOption(source, 'leakSampleRate', 0.001);
  if (leakSampleRate > 1) fail('leakSampleRate', 'a number between 0 and 1', leakSampleRate);
  const bodyLeakWarnAfterMs = numberOption(source, 'bodyLeakWarnAfterMs', 60_000);
  const bodyAbandonAfterMs = numberOption(source, 'bodyAbandonAfterMs', 0);
  if (bodyAbandonAfterMs > 0 && bodyLeakWarnAfterMs > 0 && bodyAbandonAfterMs < bodyLeakWarnAfterMs) {
    fail('bodyAbandonAfterMs', `0 or a number >= bodyLeakWarnAfterMs (${bodyLeakWarnAfterMs})`, bodyAbandonAfterMs);
  }
  const tls = source['tls'] === undefined ? {} : objectOption(source['tls'], 'tls');
  const clock = source['clock'] as Clock | undefined;
  if (clock !== undefined && (typeof clock !== 'object' || typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function')) {
    fail('clock', 'an object with now(), setTimeout() and clearTimeout()', clock);
  }
  return Object.freeze({
    name,
    connectionsPerOrigin: numberOption(source, 'connectionsPerOrigin', 10, { integer: true, min: 1 }),
    maxConnections: numberOption(source, 'maxConnections', 256, { integer: true, min: 1, allowInfinity: true }),
    maxWaiting: numberOption(source, 'maxWaiting', 1024, { integer: true, min: 0, allowInfinity: true }),
    acquireTimeoutMs: durationOption(source, 'acquireTimeoutMs', 30_000, { min: 1, allowInfinity: true }),
    connectTimeoutMs: durationOption(source, 'connectTimeoutMs', 10_000, { min: 1 }),
    idleTimeoutMs: durationOption(source, 'idleTimeoutMs', 30_000, { min: 1 }),
    keepAliveSafetyMarginMs: numberOption(source, 'keepAliveSafetyMarginMs', 1000),
    maxLifetimeMs,
    maxLifetimeJitterMs,
    headersTimeoutMs: durationOption(source, 'headersTimeoutMs', 300_000, { min: 1 }),
    bodyTimeoutMs: durationOption(source, 'bodyTimeoutMs', 300_000, { min: 1 }),
    bodyLeakWarnAfterMs,
    bodyAbandonAfterMs,
    leakDetection,
    leakSampleRate,
    retry: resolveRetryOptions(source['retry']),
    tls: Object.freeze({ ...tls }),
    // Timer-backed: node cannot keep a timer longer than 2^31-1 ms (a longer one fires after 1 ms), and
    // close() would otherwise be the first to find out.
    closeTimeoutMs: durationOption(source, 'closeTimeoutMs', 30_000, { allowInfinity: true }),
    clock,
    budgetFor: resolveBudget(source['budget']),
  });
}

/** Merges a scope's overrides over its parent's options (the parent's retry policy is kept unless replaced). */
export function scopeOptions(parent: HttpPoolOptions, overrides: HttpPoolOptions | undefined): HttpPoolOptions {
  return { ...parent, ...(overrides ?? {}) };
}
