/** Options of `guardServer()`: their types, defaults and validation at construction. */
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption, rejectUnknownKeys } from '../pool/options.js';
import type { ConnectionInfo } from './types.js';

export type KeepAliveHint = 'node' | 'safe' | number;

export interface ServerGuardOptions {
  /** Name used in reports, warnings and metrics. @default `"server-<n>"` */
  readonly name?: string;
  /**
   * A socket whose peer half-closed (sent FIN) and that the application has not ended within this time is
   * ended by the guard, then destroyed after `destroyAfterEndMs`. `Infinity` turns it off. @default 10000
   */
  readonly halfClosedTimeoutMs?: number;
  /**
   * A socket that moved no byte (either way) and had no HTTP request in flight for this long is ended
   * likewise. Covers raw `net` and upgraded sockets; node's own `keepAliveTimeout` usually ends idle
   * HTTP sockets first. `Infinity` turns it off. @default 600000
   */
  readonly idleTimeoutMs?: number;
  /** How long a socket the guard ended may take to close before it is destroyed. @default 2000 */
  readonly destroyAfterEndMs?: number;
  /**
   * Period of the guard's checks on the shared housekeeper. A socket is reaped at most this long after
   * its timeout. @default half the shorter of the two timeouts, between 10 and 1000
   */
  readonly checkIntervalMs?: number;
  /**
   * The `Keep-Alive: timeout=` hint on HTTP/1.1 responses: `'node'` leaves node's (`keepAliveTimeout`
   * rounded down to seconds), `'safe'` sends one at least `keepAliveHintMarginMs` shorter than the time
   * after which the socket really closes, a number sends that many seconds. @default 'node'
   */
  readonly keepAliveHint?: KeepAliveHint;
  /** The least gap between the hint and the real idle close before the guard warns. @default 1000 */
  readonly keepAliveHintMarginMs?: number;
  /** Default deadline of `shutdown()`, readiness delay included. @default 10000 */
  readonly shutdownTimeoutMs?: number;
  /**
   * After `shutdown()` turns the guard not ready (health check failing), it keeps serving this long
   * before it stops accepting, so that load balancers notice first. Part of the deadline. @default 0
   */
  readonly shutdownDelayMs?: number;
  /**
   * At shutdown, a keep-alive socket whose last response ended less than this long ago is kept open
   * this long for the request its client may be sending right now, which then gets `Connection: close`
   * instead of a reset; sockets idle for longer are closed at once. 0 closes every idle socket at once
   * (node's `closeIdleConnections()`). @default 0
   */
  readonly idleGraceMs?: number;
  /** Requests to this path are answered by the guard with 503 once shutdown has begun. @default none */
  readonly healthCheckPath?: string;
  /** Called when `shutdown()` begins, before the readiness delay (deregister from discovery, etc.). */
  readonly beforeShutdown?: () => void | Promise<void>;
  /**
   * Ends a socket that no HTTP parser owns (raw `net`, upgraded, `CONNECT`) at shutdown: send a
   * WebSocket close frame, say goodbye in your protocol. @default `socket.end()`
   */
  readonly closeConnection?: (socket: Duplex, info: ConnectionInfo) => void | Promise<void>;
  /** Time source for the timeouts (tests inject a fake one). @default the system clock */
  readonly clock?: Clock;
}

export interface ResolvedServerGuardOptions {
  readonly name: string;
  readonly halfClosedTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly destroyAfterEndMs: number;
  readonly checkIntervalMs: number;
  readonly keepAliveHint: KeepAliveHint;
  readonly keepAliveHintMarginMs: number;
  readonly shutdownTimeoutMs: number;
  readonly shutdownDelayMs: number;
  readonly idleGraceMs: number;
  readonly healthCheckPath: string | null;
  readonly beforeShutdown: (() => void | Promise<void>) | null;
  readonly closeConnection: ((socket: Duplex, info: ConnectionInfo) => void | Promise<void>) | null;
  readonly clock: Clock;
}

const KNOWN = new Set([
  'name', 'halfClosedTimeoutMs', 'idleTimeoutMs', 'destroyAfterEndMs', 'checkIntervalMs', 'keepAliveHint',
  'keepAliveHintMarginMs', 'shutdownTimeoutMs', 'shutdownDelayMs', 'idleGraceMs', 'healthCheckPath', 'beforeShutdown',
  'closeConnection', 'clock',
]);

// Below this a timer is a busy loop, not a timeout (the standards forbid 1 ms timers).
const MIN_TIMER_MS = 10;
let counter = 0;

function fail(option: string, expected: string, given: unknown): never {
  throw new InvalidOptionError(option, `invalid option "${option}": expected ${expected}, got ${describe(given)}`);
}

export function resolveServerGuardOptions(options: ServerGuardOptions | undefined): ResolvedServerGuardOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || (options as unknown) === null || Array.isArray(options)) fail('options', 'an object or undefined', options);
  rejectUnknownKeys(options, KNOWN, 'guardServer()');
  const source = options as Record<string, unknown>;

  const name = source['name'] ?? `server-${++counter}`;
  if (typeof name !== 'string' || name.length === 0) fail('name', 'a non-empty string', name);
  const halfClosedTimeoutMs = numberOption(source, 'halfClosedTimeoutMs', 10_000, { min: MIN_TIMER_MS, allowInfinity: true });
  const idleTimeoutMs = numberOption(source, 'idleTimeoutMs', 600_000, { min: MIN_TIMER_MS, allowInfinity: true });
  const destroyAfterEndMs = numberOption(source, 'destroyAfterEndMs', 2_000, { min: 0 });
  const shorter = Math.min(halfClosedTimeoutMs, idleTimeoutMs);
  const defaultInterval = shorter === Infinity ? 1000 : Math.max(MIN_TIMER_MS, Math.min(1000, Math.floor(shorter / 2)));
  const checkIntervalMs = numberOption(source, 'checkIntervalMs', defaultInterval, { min: MIN_TIMER_MS });

  const hint = source['keepAliveHint'] ?? 'node';
  if (hint !== 'node' && hint !== 'safe' && !(typeof hint === 'number' && Number.isInteger(hint) && hint >= 0)) {
    fail('keepAliveHint', '"node", "safe" or an integer number of seconds >= 0', hint);
  }
  const keepAliveHintMarginMs = numberOption(source, 'keepAliveHintMarginMs', 1_000, { min: 0 });
  const shutdownTimeoutMs = numberOption(source, 'shutdownTimeoutMs', 10_000, { min: MIN_TIMER_MS });
  const shutdownDelayMs = numberOption(source, 'shutdownDelayMs', 0, { min: 0 });
  if (shutdownDelayMs >= shutdownTimeoutMs) {
    throw new InvalidOptionError('shutdownDelayMs', `invalid option "shutdownDelayMs": must be < shutdownTimeoutMs (${shutdownTimeoutMs}), the deadline it is part of, got number ${shutdownDelayMs}`);
  }

  const idleGraceMs = numberOption(source, 'idleGraceMs', 0, { min: 0 });
  if (idleGraceMs > 0 && idleGraceMs < MIN_TIMER_MS) fail('idleGraceMs', `0 or a number >= ${String(MIN_TIMER_MS)}`, idleGraceMs);

  const healthCheckPath = source['healthCheckPath'] ?? null;
  if (healthCheckPath !== null && (typeof healthCheckPath !== 'string' || !healthCheckPath.startsWith('/'))) {
    fail('healthCheckPath', 'a path starting with "/"', healthCheckPath);
  }
  for (const fn of ['beforeShutdown', 'closeConnection'] as const) {
    if (source[fn] !== undefined && typeof source[fn] !== 'function') fail(fn, 'a function or undefined', source[fn]);
  }
  const clock = source['clock'] ?? systemClock;
  if (typeof clock !== 'object' || typeof (clock as Clock).now !== 'function' || typeof (clock as Clock).setTimeout !== 'function') {
    fail('clock', 'a Clock (now, setTimeout, clearTimeout)', clock);
  }

  return {
    name,
    halfClosedTimeoutMs,
    idleTimeoutMs,
    destroyAfterEndMs,
    checkIntervalMs,
    keepAliveHint: hint,
    keepAliveHintMarginMs,
    shutdownTimeoutMs,
    shutdownDelayMs,
    idleGraceMs,
    healthCheckPath,
    beforeShutdown: (options.beforeShutdown ?? null),
    closeConnection: (options.closeConnection ?? null),
    clock: clock as Clock,
  };
}
