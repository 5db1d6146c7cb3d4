/** Public shapes of `lifeguard/server`: connection snapshots, reap reports, warnings and shutdown reports. */
import type { ServerCodes } from './errors.js';

/**
 * `open`: a raw `net` socket; `active`: an HTTP request is in flight on it; `idle`: an HTTP keep-alive
 * socket between requests; `upgraded`: taken over by an `upgrade` or `connect` handler (or an HTTP/2
 * session); `half-closed`: the peer sent FIN and the application has not ended the socket (CLOSE_WAIT in
 * the kernel); `ending`: ended by the application or the guard, not closed yet.
 */
export type ConnectionState = 'open' | 'active' | 'idle' | 'upgraded' | 'half-closed' | 'ending';

/** Who handles the socket: the `net` server's own listener, node's HTTP parser, an upgrade or connect handler, or HTTP/2. */
export type ConnectionKind = 'net' | 'http' | 'upgrade' | 'connect' | 'http2';

export interface ConnectionInfo {
  /** Per-guard sequence number. */
  readonly id: number;
  /** `address:port` of the peer, as accepted (`[v6]:port` for IPv6; `unknown` for a socket without one). */
  readonly remote: string;
  readonly kind: ConnectionKind;
  readonly state: ConnectionState;
  /** The last route (`GET /path`), upgrade (`upgrade GET /ws`) or tunnel (`connect host:443`) on it; null before any. */
  readonly owner: string | null;
  /** Time since the socket was accepted. */
  readonly ageMs: number;
  /** Time since a byte last moved or a request ended (measured at the guard's check period). */
  readonly idleMs: number;
  /** Time since the peer half-closed, or null. */
  readonly halfClosedMs: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** HTTP requests seen on it. */
  readonly requests: number;
  /** HTTP requests whose response has not finished. */
  readonly inFlight: number;
}

/** What the guard did to a socket, and why. */
export interface ReapReport extends ConnectionInfo {
  readonly code: typeof ServerCodes.HALF_CLOSED | typeof ServerCodes.IDLE | typeof ServerCodes.DESTROYED;
  /** `ended` (FIN sent) or `destroyed` (closed without waiting for buffered writes). */
  readonly action: 'ended' | 'destroyed';
  /** The guard's name. */
  readonly server: string;
  readonly message: string;
}

export interface ServerWarning {
  readonly code: typeof ServerCodes.KEEPALIVE_HINT | typeof ServerCodes.TIMEOUTS | typeof ServerCodes.UNTRACKED;
  readonly server: string;
  readonly message: string;
}

export interface ShutdownOptions {
  /** Deadline of the whole shutdown, readiness delay included. @default the guard's `shutdownTimeoutMs` */
  readonly timeoutMs?: number;
}

export interface ShutdownReport {
  readonly code: typeof ServerCodes.SHUTDOWN_CLEAN | typeof ServerCodes.SHUTDOWN_FORCED;
  readonly server: string;
  /** From the `shutdown()` call to the last socket closed (or destroyed). */
  readonly durationMs: number;
  readonly timeoutMs: number;
  /** Connections open when the server stopped accepting. */
  readonly connectionsAtStart: number;
  /** HTTP requests in flight when the server stopped accepting. */
  readonly inFlightAtStart: number;
  /** HTTP responses that finished (were sent in full) during the shutdown. */
  readonly requestsCompleted: number;
  /** HTTP responses in flight during the shutdown that closed before they were sent in full (never clean). */
  readonly requestsUnfinished: number;
  /** Responses that carried `Connection: close` because of the shutdown. */
  readonly closeHeadersSent: number;
  /** Keep-alive sockets closed because they were idle (at once, or as soon as their last response finished). */
  readonly idleClosed: number;
  /** Sockets handed to `closeConnection` (or ended): raw `net`, upgraded, `CONNECT`; HTTP/2 sessions sent GOAWAY. */
  readonly upgradedClosed: number;
  /** Requests the guard's health check answered with 503 during the shutdown. */
  readonly healthChecksFailed: number;
  /** What was still open at the deadline and was destroyed: the connections that blocked the shutdown. */
  readonly blockers: readonly ConnectionInfo[];
  readonly message: string;
}

export interface ServerGuardStats {
  readonly server: string;
  /** Open connections by state. */
  readonly connections: Readonly<Record<ConnectionState, number>>;
  readonly open: number;
  /** Accepted since the guard started. */
  readonly accepted: number;
  /** Ended for `LG_SERVER_HALF_CLOSED`, for `LG_SERVER_IDLE`, and destroyed after not closing (`LG_SERVER_DESTROYED`). */
  readonly reaped: { readonly halfClosed: number; readonly idle: number; readonly destroyed: number };
  readonly ready: boolean;
  readonly shuttingDown: boolean;
  /** Duration of the last completed shutdown, or null. */
  readonly lastShutdownMs: number | null;
}
