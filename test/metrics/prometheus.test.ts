import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { MetricsCollector, registerPrometheus } from '../../src/metrics/index.js';
import { InvalidOptionError } from '../../src/index.js';
import { FakeClock, flush, runWorkload } from './workload.js';

interface JsonMetric {
  name: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

async function metric(registry: Registry, name: string): Promise<JsonMetric> {
  const all = (await registry.getMetricsAsJSON()) as unknown as JsonMetric[];
  const found = all.find((m) => m.name === name);
  assert.ok(found, `metric ${name} is registered`);
  return found;
}

function value(m: JsonMetric, labels: Record<string, string>, metricName?: string): number | undefined {
  return m.values.find((v) => (metricName === undefined || v.metricName === metricName)
    && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)
    && Object.keys(v.labels).filter((k) => k !== 'le').length === Object.keys(labels).filter((k) => k !== 'le').length)?.value;
}

describe('registerPrometheus()', () => {
  it('publishes gauges, counters and histograms of a scripted workload in a real prom-client registry', async () => {
    const clock = new FakeClock();
    const collector = new MetricsCollector({ clock });
    const registry = new Registry();
    const prom = registerPrometheus({ registry, collector });
    const { pool, leases } = await runWorkload(clock);
    try {
      const connections = await metric(registry, 'lifeguard_pool_connections');
      assert.equal(connections.type, 'gauge');
      assert.equal(value(connections, { pool: 'db', state: 'used' }), 2);
      assert.equal(value(connections, { pool: 'db', state: 'idle' }), 0);
      assert.equal(value(await metric(registry, 'lifeguard_pool_connections_max'), { pool: 'db' }), 2);
      assert.equal(value(await metric(registry, 'lifeguard_pool_connections_idle_max'), { pool: 'db' }), 2);
      assert.equal(value(await metric(registry, 'lifeguard_pool_connections_idle_min'), { pool: 'db' }), 0);
      assert.equal(value(await metric(registry, 'lifeguard_pool_pending_requests'), { pool: 'db' }), 0);
      const timeouts = await metric(registry, 'lifeguard_pool_timeouts_total');
      assert.equal(timeouts.type, 'counter');
      assert.equal(value(timeouts, { pool: 'db' }), 1);
      assert.equal(value(await metric(registry, 'lifeguard_pool_connections_created_total'), { pool: 'db' }), 2);
      assert.equal(value(await metric(registry, 'lifeguard_pool_acquires_total'), { pool: 'db' }), 4);

      const wait = await metric(registry, 'lifeguard_pool_wait_time_seconds');
      assert.equal(wait.type, 'histogram');
      assert.equal(value(wait, { pool: 'db' }, 'lifeguard_pool_wait_time_seconds_count'), 4);
      assert.ok(Math.abs((value(wait, { pool: 'db' }, 'lifeguard_pool_wait_time_seconds_sum') ?? NaN) - 0.07) < 1e-9);
      // 30 ms and 40 ms are above the 25 ms bucket, within 50 ms; the two hand-offs took 0.
      assert.equal(value(wait, { pool: 'db', le: '0.025' }, 'lifeguard_pool_wait_time_seconds_bucket'), 2);
      assert.equal(value(wait, { pool: 'db', le: '0.05' }, 'lifeguard_pool_wait_time_seconds_bucket'), 4);
      const use = await metric(registry, 'lifeguard_pool_use_time_seconds');
      assert.equal(value(use, { pool: 'db' }, 'lifeguard_pool_use_time_seconds_count'), 2);
      assert.ok(Math.abs((value(use, { pool: 'db' }, 'lifeguard_pool_use_time_seconds_sum') ?? NaN) - 0.54) < 1e-9);
      const create = await metric(registry, 'lifeguard_pool_create_time_seconds');
      assert.equal(value(create, { pool: 'db' }, 'lifeguard_pool_create_time_seconds_count'), 2);
      assert.ok(Math.abs((value(create, { pool: 'db' }, 'lifeguard_pool_create_time_seconds_sum') ?? NaN) - 0.03) < 1e-9);

      // Closes by reason and leaks by kind follow the pool's own counters.
      leases[0]?.destroy(new Error('broken pipe'));
      await flush();
      const closes = await metric(registry, 'lifeguard_pool_connections_closed_total');
      assert.equal(value(closes, { pool: 'db', reason: 'error' }), 1);
      assert.equal(value(closes, { pool: 'db', reason: 'idle' }), 0);
      const leaks = await metric(registry, 'lifeguard_pool_leaks_total');
      assert.equal(value(leaks, { pool: 'db', kind: 'held' }), 0);

      const text = await registry.metrics();
      assert.match(text, /^# TYPE lifeguard_pool_connections gauge$/m);
      assert.match(text, /^lifeguard_pool_connections\{pool="db",state="used"\} 1$/m);
      assert.match(text, /^lifeguard_pool_timeouts_total\{pool="db"\} 1$/m);
    } finally {
      await pool.close({ timeoutMs: 0 });
    }
    // A closed pool is gone from every series, histograms included.
    const after = await registry.metrics();
    assert.doesNotMatch(after, /pool="db"/);
    prom.close();
    assert.deepEqual(await registry.getMetricsAsJSON(), [], 'close() unregisters every metric');
    collector.close();
  });

  it('counts leaks by kind and open leaks', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const collector = new MetricsCollector({ clock });
    const prom = registerPrometheus({ registry, collector, prefix: 'app_' });
    const { TestFactory } = await import('../support/factory.js');
    const { Pool } = await import('../../src/index.js');
    const factory = new TestFactory();
    const pool = new Pool({ name: 'leaky', factory: factory.basic(), clock, leakDetection: 'full', leakWarnAfterMs: 1000 });
    const reports: string[] = [];
    pool.on('leak', (r) => reports.push(r.kind));
    try {
      const lease = await pool.acquire();
      await clock.advance(1500);
      assert.deepEqual(reports, ['held']);
      assert.equal(value(await metric(registry, 'app_pool_leaks_total'), { pool: 'leaky', kind: 'held' }), 1);
      assert.equal(value(await metric(registry, 'app_pool_open_leaks'), { pool: 'leaky' }), 1);
      lease.release();
      assert.equal(value(await metric(registry, 'app_pool_open_leaks'), { pool: 'leaky' }), 0);
    } finally {
      await pool.close();
      prom.close();
      collector.close();
    }
  });

  it('sums pools that share a name instead of publishing duplicate series', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const collector = new MetricsCollector({ clock });
    const prom = registerPrometheus({ registry, collector });
    const { TestFactory } = await import('../support/factory.js');
    const { Pool } = await import('../../src/index.js');
    const one = new Pool({ name: 'twin', factory: new TestFactory().basic(), clock, max: 3 });
    const two = new Pool({ name: 'twin', factory: new TestFactory().basic(), clock, max: 4 });
    try {
      assert.equal(value(await metric(registry, 'lifeguard_pool_connections_max'), { pool: 'twin' }), 7);
    } finally {
      await Promise.all([one.close(), two.close()]);
      prom.close();
      collector.close();
    }
  });

  it('validates its options', () => {
    const registry = new Registry();
    assert.throws(() => registerPrometheus({ registry, prefx: 'x' } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'prefx' && /unknown option "prefx" for registerPrometheus/.test(e.message));
    assert.throws(() => registerPrometheus({ registry, prefix: 'bad-prefix' }), /invalid option "prefix": expected a Prometheus name prefix .*got the string "bad-prefix"/);
    assert.throws(() => registerPrometheus({ registry, buckets: [1, 0.5] }), /invalid option "buckets": expected a non-empty array of increasing/);
    assert.throws(() => registerPrometheus({ registry: {} as never }), /invalid option "registry": expected a prom-client Registry, got an object/);
    assert.throws(() => registerPrometheus({ registry, collector: {} as never }), /invalid option "collector": expected a MetricsCollector/);
    assert.deepEqual(registry.getMetricsAsArray(), [], 'nothing registered by a failed call');
  });

  it('registers in the global registry by default and refuses to register twice', async () => {
    const { register } = await import('prom-client');
    const prom = registerPrometheus();
    try {
      assert.equal(prom.registry, register);
      assert.ok(register.getSingleMetric('lifeguard_pool_connections'));
      assert.throws(() => registerPrometheus(), /already been registered/);
    } finally {
      prom.close();
    }
    assert.equal(register.getSingleMetric('lifeguard_pool_connections'), undefined);
  });
});
