/** Keep-alive alignment: when an idle HTTP socket really closes, and the `Keep-Alive: timeout=` hint that is safe to send. */
import type { KeepAliveHint } from './options.js';

export interface IdleTimeouts {
  /** `server.keepAliveTimeout`; 0 turns node's idle close off. */
  readonly keepAliveTimeout: number;
  /** `server.timeout` (socket inactivity); 0 is off. */
  readonly timeout: number;
  /** The guard's `idleTimeoutMs` (Infinity is off). */
  readonly idleTimeoutMs: number;
}

/** When an idle keep-alive socket really closes, and what closes it first; null when node keeps idle sockets forever. */
export function idleClose(t: IdleTimeouts): { readonly ms: number; readonly by: string } | null {
  if (!(t.keepAliveTimeout > 0)) return null;
  let close = { ms: t.keepAliveTimeout, by: `keepAliveTimeout=${String(t.keepAliveTimeout)}` };
  if (t.timeout > 0 && t.timeout < close.ms) close = { ms: t.timeout, by: `server.timeout=${String(t.timeout)}` };
  if (t.idleTimeoutMs < close.ms) close = { ms: t.idleTimeoutMs, by: `the guard's idleTimeoutMs=${String(t.idleTimeoutMs)}` };
  return close;
}

/**
 * The hint in whole seconds that responses carry: node's (`keepAliveTimeout` rounded down), the largest
 * one at least `marginMs` shorter than the real close (`'safe'`; null when not even 1 s fits), or the
 * number given. Null: no hint from the guard.
 */
export function hintSeconds(hint: KeepAliveHint, t: IdleTimeouts, marginMs: number): number | null {
  if (typeof hint === 'number') return hint;
  const close = idleClose(t);
  if (close === null) return null;
  if (hint === 'node') return Math.floor(t.keepAliveTimeout / 1000);
  const safe = Math.floor((close.ms - marginMs) / 1000);
  return safe >= 1 ? safe : null;
}
