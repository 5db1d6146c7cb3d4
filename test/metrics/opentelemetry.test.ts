import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DataPointType, MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { MetricsCollector, registerOpenTelemetry } from '../../src/metrics/index.js';
import { activeResources, grown } from '../support/handles.js';
import { OnDemandReader } from './otel-reader.js';
import { FakeClock, flush, runWorkload } from './workload.js';

const POOL = 'db.client.connection.pool.name';

function find(metrics: MetricData[], name: string): MetricData {
  const found = metrics.find((m) => m.descriptor.name === name);
  assert.ok(found, `instrument ${name} exported (got ${metrics.map((m) => m.descriptor.name).join(', ')})`);
  return found;
}

function point(metric: MetricData, attributes: Record<string, string>): unknown {
  const match = (metric.dataPoints as { attributes: Record<string, unknown>; value: unknown }[]).find((p) => Object.keys(attributes).length === Object.keys(p.attributes).length && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
  assert.ok(match, `a data point of ${metric.descriptor.name} with ${JSON.stringify(attributes)} (got ${JSON.stringify(metric.dataPoints.map((p) => p.attributes))})`);
  return match.value;
}

describe('registerOpenTelemetry()', () => {
  it('exports the semantic-convention instruments of a scripted workload', async () => {
    const before = activeResources();
    const clock = new FakeClock();
    const reader = new OnDemandReader();
    const provider = new MeterProvider({ readers: [reader] });
    const collector = new MetricsCollector({ clock });
    const otel = registerOpenTelemetry({ meterProvider: provider, collector });
    const { pool } = await runWorkload(clock);
    try {
      const metrics = await reader.exportNow();
      const count = find(metrics, 'db.client.connection.count');
      assert.equal(count.dataPointType, DataPointType.SUM);
      assert.equal(count.descriptor.unit, '{connection}');
      assert.equal(point(count, { [POOL]: 'db', 'db.client.connection.state': 'used' }), 2);
      assert.equal(point(count, { [POOL]: 'db', 'db.client.connection.state': 'idle' }), 0);
      assert.equal(point(find(metrics, 'db.client.connection.max'), { [POOL]: 'db' }), 2);
      assert.equal(point(find(metrics, 'db.client.connection.idle.max'), { [POOL]: 'db' }), 2);
      assert.equal(point(find(metrics, 'db.client.connection.idle.min'), { [POOL]: 'db' }), 0);
      assert.equal(point(find(metrics, 'db.client.connection.pending_requests'), { [POOL]: 'db' }), 0);
      const timeouts = find(metrics, 'db.client.connection.timeouts');
      assert.equal(timeouts.dataPointType, DataPointType.SUM);
      assert.equal(point(timeouts, { [POOL]: 'db' }), 1);

      const wait = find(metrics, 'db.client.connection.wait_time');
      assert.equal(wait.dataPointType, DataPointType.HISTOGRAM);
      assert.equal(wait.descriptor.unit, 's');
      const waitPoint = point(wait, { [POOL]: 'db' }) as { count: number; sum: number; min: number; max: number; buckets: { boundaries: number[]; counts: number[] } };
      assert.equal(waitPoint.count, 4);
      assert.ok(Math.abs(waitPoint.sum - 0.07) < 1e-9);
      assert.equal(waitPoint.max, 0.04);
      assert.equal(waitPoint.buckets.boundaries[0], 0.0005, 'the advised bucket boundaries are used');
      const use = point(find(metrics, 'db.client.connection.use_time'), { [POOL]: 'db' }) as { count: number; sum: number };
      assert.equal(use.count, 2);
      assert.ok(Math.abs(use.sum - 0.54) < 1e-9);
      const create = point(find(metrics, 'db.client.connection.create_time'), { [POOL]: 'db' }) as { count: number; sum: number };
      assert.equal(create.count, 2);
      assert.ok(Math.abs(create.sum - 0.03) < 1e-9);
    } finally {
      await pool.close({ timeoutMs: 0 });
    }
    await flush();

    otel.close();
    otel.close();
    collector.close();
    await provider.shutdown();
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('stops observing after close()', async () => {
    const clock = new FakeClock();
    const reader = new OnDemandReader();
    const provider = new MeterProvider({ readers: [reader] });
    const collector = new MetricsCollector({ clock });
    const otel = registerOpenTelemetry({ meter: provider.getMeter('test'), collector });
    const { pool } = await runWorkload(clock, 'cache');
    try {
      otel.close();
      const metrics = await reader.exportNow();
      assert.equal(metrics.find((m) => m.descriptor.name === 'db.client.connection.count')?.dataPoints.length ?? 0, 0);
    } finally {
      await pool.close({ timeoutMs: 0 });
      collector.close();
      await provider.shutdown();
    }
  });

  it('validates its options', () => {
    assert.throws(() => registerOpenTelemetry({ metre: {} } as never), /unknown option "metre" for registerOpenTelemetry; known options: buckets, collector, meter, meterProvider/);
    assert.throws(() => registerOpenTelemetry({ meter: {} as never }), /invalid option "meter": expected an OpenTelemetry Meter, got an object/);
    assert.throws(() => registerOpenTelemetry({ meterProvider: 42 as never }), /invalid option "meterProvider": expected an OpenTelemetry MeterProvider, got number 42/);
    assert.throws(() => registerOpenTelemetry({ buckets: [] }), /invalid option "buckets"/);
  });
});
