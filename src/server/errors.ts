/** Codes of `lifeguard/server`: its errors, its reap reports, its warnings and its shutdown reports. */
import { LifeguardError } from '../pool/errors.js';

/**
 * Stable codes of `lifeguard/server`; they never change meaning. Options are rejected with the pool's
 * `LG_INVALID_OPTION` (`InvalidOptionError`), like every other part.
 */
export const ServerCodes = Object.freeze({
  /** Error: `guardServer()` on a server that a live guard already watches. */
  ALREADY_GUARDED: 'LG_SERVER_ALREADY_GUARDED',
  /** Error: `guardServer()` on something that is not a `net.Server` (http, https, http2 and tls servers are). */
  NOT_A_SERVER: 'LG_SERVER_NOT_A_SERVER',
  /** Reap report: the peer half-closed and the application did not end the socket within `halfClosedTimeoutMs`. */
  HALF_CLOSED: 'LG_SERVER_HALF_CLOSED',
  /** Reap report: no byte moved and no request was in flight for `idleTimeoutMs`. */
  IDLE: 'LG_SERVER_IDLE',
  /** Reap report: a socket the guard ended did not close within `destroyAfterEndMs`; it was destroyed. */
  DESTROYED: 'LG_SERVER_DESTROYED',
  /** Warning: the `Keep-Alive: timeout=` hint is not shorter than the time after which the socket really closes. */
  KEEPALIVE_HINT: 'LG_SERVER_KEEPALIVE_HINT',
  /** Warning: guarded while already listening with connections open: those are not tracked (shutdown still waits for them). */
  UNTRACKED: 'LG_SERVER_UNTRACKED',
  /** Warning: `headersTimeout` is longer than `requestTimeout`, so it can never fire. */
  TIMEOUTS: 'LG_SERVER_TIMEOUTS',
  /** Shutdown report: every connection closed on its own before the deadline. */
  SHUTDOWN_CLEAN: 'LG_SERVER_SHUTDOWN_CLEAN',
  /**
   * Shutdown report: connections were still open at the deadline and were destroyed (`blockers` names
   * them), or responses in flight were cut before they were sent in full (`requestsUnfinished`).
   */
  SHUTDOWN_FORCED: 'LG_SERVER_SHUTDOWN_FORCED',
} as const);

export type ServerCode = (typeof ServerCodes)[keyof typeof ServerCodes];

/** Errors thrown by `lifeguard/server` (other than `LG_INVALID_OPTION`). */
export class ServerGuardError extends LifeguardError<ServerCode> {}
