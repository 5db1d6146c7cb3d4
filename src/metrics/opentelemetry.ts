import type { Attributes, BatchObservableCallback, Histogram, Meter, MeterProvider, Observable, ObservableCounter, ObservableUpDownCounter } from '@opentelemetry/api';
import { InvalidOptionError } from '../pool/errors.js';
import { describe } from '../pool/options.js';
import { optionsRecord, type MetricsCollector, type Observation } from './collector.js';
import { bucketsOption, byName, CONNECTION_COUNT, HISTOGRAMS, POOL_GAUGES, POOL_NAME_ATTRIBUTE, STATE_ATTRIBUTE, TIMEOUTS } from './figures.js';
import { loadOptional, useCollector } from './optional.js';
import { SERVER_ATTRIBUTES, SERVER_FIGURES, serverCloseWait, serverSamples, type ServerFigure, type ServerSample } from './server.js';

type OtelApi = typeof import('@opentelemetry/api');

export interface OpenTelemetryOptions {
  /** Meter the instruments are made with. @default `meterProvider.getMeter('lifeguard')` */
  readonly meter?: Meter;
  /** Provider of the meter, when no `meter` is given. @default the global provider of `@opentelemetry/api` */
  readonly meterProvider?: MeterProvider;
  /** Bucket boundaries (seconds) advised for the duration histograms. @default 0.0005 s to 60 s, 16 buckets */
  readonly buckets?: readonly number[];
  /** Collector to read; one of its own is made (and closed with the exporter) when not given. @default a new MetricsCollector */
  readonly collector?: MetricsCollector;
}

/** The registered instruments; `close()` stops observing and recording. */
export interface OpenTelemetryMetrics {
  readonly meter: Meter;
  /** Stops the observable callbacks and histogram recording. Idempotent. */
  close(): void;
}

const KNOWN = new Set(['meter', 'meterProvider', 'buckets', 'collector']);

/**
 * Publishes every open pool through OpenTelemetry with the database-client semantic-convention names:
 * `db.client.connection.count` (attribute `db.client.connection.state` = idle | used), `.idle.max`,
 * `.idle.min`, `.max`, `.pending_requests` and `.timeouts` observed at collection time, and the
 * `.create_time`, `.wait_time` and `.use_time` histograms (seconds) recorded as events happen. Every
 * data point carries `db.client.connection.pool.name`. Servers guarded by `lifeguard/server` are
 * published as `lifeguard.server.*` instruments with `lifeguard.server.name` (see docs/metrics.md).
 */
export function registerOpenTelemetry(options?: OpenTelemetryOptions): OpenTelemetryMetrics {
  const source = optionsRecord(options, KNOWN, 'registerOpenTelemetry');
  const buckets = bucketsOption(source);
  let meter = source['meter'] as Meter | undefined;
  if (meter === undefined) {
    const provider = (source['meterProvider'] ?? (loadOptional('@opentelemetry/api', 'registerOpenTelemetry()') as OtelApi).metrics.getMeterProvider()) as MeterProvider;
    if (typeof provider !== 'object' || typeof (provider as Partial<MeterProvider>).getMeter !== 'function') {
      throw new InvalidOptionError('meterProvider', `invalid option "meterProvider": expected an OpenTelemetry MeterProvider, got ${describe(provider)}`);
    }
    meter = provider.getMeter('lifeguard');
  } else if (typeof meter !== 'object' || typeof (meter as Partial<Meter>).createHistogram !== 'function') {
    throw new InvalidOptionError('meter', `invalid option "meter": expected an OpenTelemetry Meter, got ${describe(meter)}`);
  }
  const { collector, owned } = useCollector(source['collector']);

  const count: ObservableUpDownCounter = meter.createObservableUpDownCounter(CONNECTION_COUNT.otel, { unit: CONNECTION_COUNT.unit, description: CONNECTION_COUNT.help });
  const gauges = POOL_GAUGES.map((figure) => ({ figure, instrument: meter.createObservableUpDownCounter(figure.otel, { unit: figure.unit, description: figure.help }) }));
  // Cumulative from pool.stats(): an observable counter reports the pool's total since it was made.
  const timeouts: ObservableCounter = meter.createObservableCounter(TIMEOUTS.otel, { unit: TIMEOUTS.unit, description: TIMEOUTS.help });
  const observables: Observable[] = [count, ...gauges.map((g) => g.instrument), timeouts];

  const callback: BatchObservableCallback = (result) => {
    const pools = collector.snapshot();
    for (const [state, value] of Object.entries(CONNECTION_COUNT.states)) {
      for (const [name, n] of byName(pools, value)) result.observe(count, n, { [POOL_NAME_ATTRIBUTE]: name, [STATE_ATTRIBUTE]: state });
    }
    for (const { figure, instrument } of gauges) {
      for (const [name, n] of byName(pools, figure.value)) result.observe(instrument, n, { [POOL_NAME_ATTRIBUTE]: name });
    }
    for (const [name, n] of byName(pools, (p) => p.stats.timeouts)) result.observe(timeouts, n, { [POOL_NAME_ATTRIBUTE]: name });
  };
  meter.addBatchObservableCallback(callback, observables);

  // The server side (lifeguard/server guards): one batch too; async only for the kernel's CLOSE_WAIT count.
  const serverInstruments = new Map<ServerFigure, Observable>();
  for (const figure of Object.values(SERVER_FIGURES) as ServerFigure[]) {
    const config = { unit: figure.unit, description: figure.help };
    serverInstruments.set(figure, figure.type === 'counter' ? meter.createObservableCounter(figure.otel, config)
      : figure === SERVER_FIGURES.ready || figure === SERVER_FIGURES.shutdownDuration ? meter.createObservableGauge(figure.otel, config)
        : meter.createObservableUpDownCounter(figure.otel, config));
  }
  const attributes = (s: ServerSample): Attributes => {
    const out: Attributes = {};
    for (const [key, value] of Object.entries(s.labels)) out[SERVER_ATTRIBUTES[key as keyof typeof SERVER_ATTRIBUTES]] = value;
    return out;
  };
  const serverCallback: BatchObservableCallback = async (result) => {
    const samples = serverSamples();
    if (samples.length === 0) return;
    for (const s of [...samples, ...await serverCloseWait()]) {
      const instrument = serverInstruments.get(s.figure);
      if (instrument !== undefined) result.observe(instrument, s.value, attributes(s));
    }
  };
  const serverObservables = [...serverInstruments.values()];
  meter.addBatchObservableCallback(serverCallback, serverObservables);

  const histograms = new Map<Observation['kind'], Histogram>();
  for (const figure of HISTOGRAMS) {
    histograms.set(figure.kind, meter.createHistogram(figure.otel, { unit: 's', description: figure.help, advice: { explicitBucketBoundaries: buckets } }));
  }
  const onObserve = (o: Observation): void => {
    histograms.get(o.kind)?.record(o.seconds, { [POOL_NAME_ATTRIBUTE]: o.name });
  };
  collector.on('observe', onObserve);

  let closed = false;
  const usedMeter = meter;
  return {
    meter: usedMeter,
    close() {
      if (closed) return;
      closed = true;
      usedMeter.removeBatchObservableCallback(callback, observables);
      usedMeter.removeBatchObservableCallback(serverCallback, serverObservables);
      collector.off('observe', onObserve);
      if (owned) collector.close();
    },
  };
}
