import { InvalidOptionError } from '../pool/errors.js';
import { describe } from '../pool/options.js';
import type { Observation, PoolSnapshot } from './collector.js';

/**
 * The figures both exporters publish, named once: the OpenTelemetry database-client semantic
 * conventions (`db.client.connection.*`) and their Prometheus counterparts. Prometheus names are
 * prefixed (`lifeguard_` by default).
 */
export interface GaugeFigure {
  readonly otel: string;
  readonly prom: string;
  readonly unit: string;
  readonly help: string;
  readonly value: (pool: PoolSnapshot) => number;
}

/** OpenTelemetry's pool name attribute. */
export const POOL_NAME_ATTRIBUTE = 'db.client.connection.pool.name';
/** OpenTelemetry's connection state attribute of `db.client.connection.count`. */
export const STATE_ATTRIBUTE = 'db.client.connection.state';

export const CONNECTION_COUNT = {
  otel: 'db.client.connection.count',
  prom: 'pool_connections',
  unit: '{connection}',
  help: 'Connections of the pool by state: idle, or used (lent, validating or resetting).',
  states: { idle: (pool: PoolSnapshot): number => pool.stats.idle, used: (pool: PoolSnapshot): number => pool.stats.inUse },
} as const;

export const POOL_GAUGES: readonly GaugeFigure[] = [
  // The pool keeps up to `max` connections idle (idleTimeoutMs trims them back to `min`).
  { otel: 'db.client.connection.idle.max', prom: 'pool_connections_idle_max', unit: '{connection}', help: 'Most idle connections the pool keeps (its max).', value: (p) => p.stats.max },
  { otel: 'db.client.connection.idle.min', prom: 'pool_connections_idle_min', unit: '{connection}', help: 'Idle connections the pool keeps ready (its min).', value: (p) => p.stats.min },
  { otel: 'db.client.connection.max', prom: 'pool_connections_max', unit: '{connection}', help: 'Most connections the pool allows open (its max).', value: (p) => p.stats.max },
  { otel: 'db.client.connection.pending_requests', prom: 'pool_pending_requests', unit: '{request}', help: 'Acquires waiting for a connection.', value: (p) => p.stats.pending },
];

export const TIMEOUTS = {
  otel: 'db.client.connection.timeouts',
  prom: 'pool_timeouts_total',
  unit: '{timeout}',
  help: 'Acquires that timed out waiting for a connection.',
} as const;

export interface HistogramFigure {
  readonly kind: Observation['kind'];
  readonly otel: string;
  readonly prom: string;
  readonly help: string;
}

export const HISTOGRAMS: readonly HistogramFigure[] = [
  { kind: 'create', otel: 'db.client.connection.create_time', prom: 'pool_create_time_seconds', help: 'Time to create a connection (one factory.create).' },
  { kind: 'wait', otel: 'db.client.connection.wait_time', prom: 'pool_wait_time_seconds', help: 'Time an acquire waited for a connection, queueing included.' },
  { kind: 'use', otel: 'db.client.connection.use_time', prom: 'pool_use_time_seconds', help: 'Time a connection was lent, from acquire to release.' },
];

/** Bucket bounds (seconds) of the duration histograms: sub-millisecond hand-offs up to minute-long waits. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

/**
 * Sums a per-pool figure by pool name. Two open pools with one name would otherwise publish two series
 * with identical labels, which both Prometheus and OpenTelemetry reject or overwrite.
 */
export function byName(pools: readonly PoolSnapshot[], value: (pool: PoolSnapshot) => number): Map<string, number> {
  const out = new Map<string, number>();
  for (const pool of pools) out.set(pool.name, (out.get(pool.name) ?? 0) + value(pool));
  return out;
}

/** Reads the `buckets` option: increasing positive finite bounds, in seconds. */
export function bucketsOption(source: Record<string, unknown>): number[] {
  const buckets = source['buckets'] ?? DEFAULT_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => typeof b !== 'number' || !(b > 0) || !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
    throw new InvalidOptionError('buckets', `invalid option "buckets": expected a non-empty array of increasing positive finite numbers (seconds), got ${describe(buckets)}`);
  }
  return [...(buckets as number[])];
}
