import type { ResolvedRetryOptions } from './options.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 §9.2.2: repeating these has the same effect as sending them once. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method.toUpperCase());
}

/** A body that can be sent again as is. Streams, iterables and FormData are consumed by the first attempt. */
export function isReplayable(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

/** Errors that say the connection failed (as opposed to the request being wrong or cancelled). */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'LG_HTTP_CONNECTION_GONE',
]);

export function isConnectionError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
    current = current.cause;
  }
  return false;
}

/** Backoff before retry number `retry` (1 for the first retry): full jitter under an exponential ceiling. */
export function backoffMs(policy: ResolvedRetryOptions, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(30, retry - 1));
  return Math.round(random() * ceiling);
}

/** A `Retry-After` value (delay-seconds or an HTTP date) in milliseconds from `nowEpochMs`, or null. */
export function parseRetryAfter(value: string, nowEpochMs: number = Date.now()): number | null {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowEpochMs);
}

/** Reads one header (case-insensitive) from undici's raw header list. */
export function rawHeader(raw: readonly Buffer[] | readonly string[] | null, name: string): string | null {
  if (raw === null) return null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as Buffer | string;
    if (key.length === name.length && key.toString().toLowerCase() === name) return (raw[i + 1] as Buffer | string).toString();
  }
  return null;
}
