import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { InvalidOptionError } from '../pool/errors.js';
import { DESTROY_REASONS } from '../pool/pool-entry.js';
import { describe } from '../pool/options.js';
import { optionsRecord, type Observation, type PoolSnapshot } from './collector.js';
import { bucketsOption, byName, CONNECTION_COUNT, HISTOGRAMS, POOL_GAUGES, TIMEOUTS } from './figures.js';
import { loadOptional, useCollector } from './optional.js';
import { SERVER_FIGURES, serverCloseWait, serverSamples, type ServerFigure, type ServerSample } from './server.js';

type PromClient = typeof import('prom-client');

export interface PrometheusOptions {
  /** Registry the metrics are registered in. @default prom-client's global `register` */
  readonly registry?: Registry;
  /** Prefix of every metric name. @default 'lifeguard_' */
  readonly prefix?: string;
  /** Bucket bounds (seconds) of the create, wait and use time histograms. @default 0.0005 s to 60 s, 16 buckets */
  readonly buckets?: readonly number[];
  /** Collector to read; one of its own is made (and closed with the exporter) when not given. @default a new MetricsCollector */
  readonly collector?: import('./collector.js').MetricsCollector;
}

/** The registered metrics; `close()` unregisters them. */
export interface PrometheusMetrics {
  readonly registry: Registry;
  /** Names of the metrics registered, prefix included. */
  readonly names: readonly string[];
  /** Removes every metric from the registry and stops listening. Idempotent. */
  close(): void;
}

const KNOWN = new Set(['registry', 'prefix', 'buckets', 'collector']);

/**
 * Registers a prom-client collector for every open pool of the process. Gauges and counters are read at
 * scrape time (`pool.stats()` counts since each pool was made, so nothing is lost to a late start);
 * the create, wait and use histograms are fed by the diagnostics channels as events happen. Every series
 * carries a `pool` label. Every server guarded by `lifeguard/server` is published too, with a `server`
 * label: connections by state, half-closed, CLOSE_WAIT (from the kernel), accepted, reaped by code,
 * readiness and the last shutdown's duration. See docs/metrics.md for the names.
 */
export function registerPrometheus(options?: PrometheusOptions): PrometheusMetrics {
  const source = optionsRecord(options, KNOWN, 'registerPrometheus');
  const client = loadOptional('prom-client', 'registerPrometheus()') as PromClient;
  const registry = (source['registry'] ?? client.register) as Registry;
  if (typeof registry !== 'object' || typeof (registry as Partial<Registry>).registerMetric !== 'function') {
    throw new InvalidOptionError('registry', `invalid option "registry": expected a prom-client Registry, got ${describe(registry)}`);
  }
  const prefix = source['prefix'] ?? 'lifeguard_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    throw new InvalidOptionError('prefix', `invalid option "prefix": expected a Prometheus name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${describe(prefix)}`);
  }
  const buckets = bucketsOption(source);
  const { collector, owned } = useCollector(source['collector']);

  // One snapshot per scrape: prom-client calls every metric's collect() in the same synchronous turn.
  let cached: PoolSnapshot[] | null = null;
  const snapshot = (): PoolSnapshot[] => {
    if (cached === null) {
      cached = collector.snapshot();
      queueMicrotask(() => { cached = null; });
    }
    return cached;
  };

  const metrics: (Gauge | Counter | Histogram)[] = [];
  const histograms = new Map<Observation['kind'], Histogram>();
  // Pool names each histogram has series for: those of pools closed since are dropped at the next scrape.
  const observed = new Map<Observation['kind'], Set<string>>();
  const unregister = (): void => {
    for (const m of metrics) registry.removeSingleMetric((m as unknown as { name: string }).name);
  };
  try {
    const registers = [registry];
    // Read at scrape time: reset, then set every series afresh (counters add the pool's running total).
    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void): void => {
      metrics.push(new client.Gauge({ name, help, labelNames, registers, collect() { this.reset(); fill(this); } }));
    };
    const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter) => void): void => {
      metrics.push(new client.Counter({ name, help, labelNames, registers, collect() { this.reset(); fill(this); } }));
    };

    gauge(`${prefix}${CONNECTION_COUNT.prom}`, CONNECTION_COUNT.help, ['pool', 'state'], (g) => {
      for (const [state, value] of Object.entries(CONNECTION_COUNT.states)) {
        for (const [pool, n] of byName(snapshot(), value)) g.set({ pool, state }, n);
      }
    });
    for (const figure of POOL_GAUGES) {
      gauge(`${prefix}${figure.prom}`, figure.help, ['pool'], (g) => {
        for (const [pool, n] of byName(snapshot(), figure.value)) g.set({ pool }, n);
      });
    }
    gauge(`${prefix}pool_creating`, 'Connections being created (factory.create in flight).', ['pool'], (g) => {
      for (const [pool, n] of byName(snapshot(), (p) => p.stats.creating)) g.set({ pool }, n);
    });
    gauge(`${prefix}pool_open_leaks`, 'Leases reported held too long (LG_LEAK_HELD) and still not released.', ['pool'], (g) => {
      for (const [pool, n] of byName(snapshot(), (p) => p.openLeaks.length)) g.set({ pool }, n);
    });
    const total = (name: string, help: string, value: (p: PoolSnapshot) => number): void => {
      counter(`${prefix}${name}`, help, ['pool'], (c) => {
        for (const [pool, n] of byName(snapshot(), value)) c.inc({ pool }, n);
      });
    };
    total(TIMEOUTS.prom, TIMEOUTS.help, (p) => p.stats.timeouts);
    total('pool_connections_created_total', 'Connections created.', (p) => p.stats.created);
    total('pool_create_errors_total', 'Failed connection attempts (factory.create rejected or timed out).', (p) => p.stats.createErrors);
    total('pool_acquires_total', 'Leases granted.', (p) => p.stats.acquired);
    counter(`${prefix}pool_connections_closed_total`, 'Connections closed, by reason: idle, lifetime, validation, error, leak, revoked, closed.', ['pool', 'reason'], (c) => {
      for (const reason of DESTROY_REASONS) {
        for (const [pool, n] of byName(snapshot(), (p) => p.stats.destroyed[reason])) c.inc({ pool, reason }, n);
      }
    });
    counter(`${prefix}pool_leaks_total`, 'Leak reports, by kind: held (out longer than leakWarnAfterMs), dropped (garbage-collected unreleased), reclaimed (revoked).', ['pool', 'kind'], (c) => {
      for (const [pool, n] of byName(snapshot(), (p) => p.stats.leaks - p.stats.dropped - p.stats.revoked)) c.inc({ pool, kind: 'held' }, n);
      for (const [pool, n] of byName(snapshot(), (p) => p.stats.dropped)) c.inc({ pool, kind: 'dropped' }, n);
      for (const [pool, n] of byName(snapshot(), (p) => p.stats.revoked)) c.inc({ pool, kind: 'reclaimed' }, n);
    });

    // The server side: every live guard of lifeguard/server, read at scrape time like the pools.
    let serverCache: ServerSample[] | null = null;
    const serverSnapshot = (): ServerSample[] => {
      if (serverCache === null) {
        serverCache = serverSamples();
        queueMicrotask(() => { serverCache = null; });
      }
      return serverCache;
    };
    for (const figure of Object.values(SERVER_FIGURES) as ServerFigure[]) {
      const config = { name: `${prefix}${figure.prom}`, help: figure.help, labelNames: [...figure.labels], registers };
      if (figure === SERVER_FIGURES.closeWait) {
        // Read from the kernel (async) and only for this gauge: the other series stay one synchronous snapshot.
        metrics.push(new client.Gauge({ ...config, async collect() {
          const samples = await serverCloseWait();
          this.reset();
          for (const s of samples) this.set(s.labels, s.value);
        } }));
        continue;
      }
      const fill = (m: Gauge | Counter): void => {
        for (const s of serverSnapshot()) {
          if (s.figure !== figure) continue;
          if (m instanceof client.Counter) m.inc(s.labels, s.value);
          else (m).set(s.labels, s.value);
        }
      };
      if (figure.type === 'counter') counter(config.name, figure.help, config.labelNames, fill);
      else gauge(config.name, figure.help, config.labelNames, fill);
    }

    for (const figure of HISTOGRAMS) {
      const seen = new Set<string>();
      observed.set(figure.kind, seen);
      const histogram = new client.Histogram({
        name: `${prefix}${figure.prom}`, help: figure.help, labelNames: ['pool'], buckets, registers,
        collect() {
          const open = new Set(snapshot().map((p) => p.name));
          for (const name of seen) {
            if (open.has(name)) continue;
            this.remove({ pool: name });
            seen.delete(name);
          }
        },
      });
      histograms.set(figure.kind, histogram);
      metrics.push(histogram);
    }
  } catch (error) {
    // A name already registered (a second exporter on one registry): leave the registry as it was.
    unregister();
    if (owned) collector.close();
    throw error;
  }
  const onObserve = (o: Observation): void => {
    observed.get(o.kind)?.add(o.name);
    histograms.get(o.kind)?.observe({ pool: o.name }, o.seconds);
  };
  collector.on('observe', onObserve);

  let closed = false;
  return {
    registry,
    names: metrics.map((m) => (m as unknown as { name: string }).name),
    close() {
      if (closed) return;
      closed = true;
      collector.off('observe', onObserve);
      unregister();
      if (owned) collector.close();
    },
  };
}
