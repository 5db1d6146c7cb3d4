import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidOptionError, Pool } from '../../src/index.js';
import { MetricsCollector, type Observation } from '../../src/metrics/index.js';
import { GrowthTracker } from '../../src/metrics/growth.js';
import { SlidingWindow } from '../../src/metrics/window.js';
import { TestFactory, type TestResource } from '../support/factory.js';
import { FakeClock } from './workload.js';

describe('MetricsCollector', () => {
  it('sees pools made before it, forwards timings, and forgets pools that close', async () => {
    const clock = new FakeClock();
    const early = new Pool<TestResource>({ name: 'early', factory: new TestFactory().basic(), clock });
    const collector = new MetricsCollector({ clock });
    const observed: Observation[] = [];
    collector.on('observe', (o) => observed.push(o));
    try {
      const lease = await early.acquire();
      await clock.advance(120);
      lease.release();
      assert.deepEqual(observed.map((o) => [o.name, o.kind, o.seconds]), [['early', 'create', 0], ['early', 'wait', 0], ['early', 'use', 0.12]]);
      assert.deepEqual(collector.snapshot().map((s) => s.name), ['early']);
      assert.equal(collector.snapshot()[0]?.stats.acquired, 1);
    } finally {
      await early.close();
    }
    assert.deepEqual(collector.snapshot(), []);
    collector.close();
    const late = new Pool<TestResource>({ name: 'late', factory: new TestFactory().basic(), clock });
    (await late.acquire()).release();
    assert.equal(observed.length, 3, 'nothing observed after close()');
    await late.close();
  });

  it('keeps wait-time percentiles over the window', async () => {
    const clock = new FakeClock();
    const collector = new MetricsCollector({ clock, percentileWindowMs: 10_000 });
    const pool = new Pool<TestResource>({ name: 'p', factory: new TestFactory().basic(), clock, max: 1 });
    try {
      let holder = await pool.acquire(); // waited 0
      for (let ms = 10; ms <= 90; ms += 10) {
        const next = pool.acquire();
        await clock.advance(ms);
        holder.release();
        holder = await next; // waited ms
      }
      holder.release();
      const wait = collector.snapshot()[0]?.wait;
      assert.deepEqual(wait, { count: 10, p50: 40, p90: 80, p99: 90, max: 90 });
      await clock.advance(10_001);
      assert.equal(collector.snapshot()[0]?.wait.count, 0, 'older than the window: gone');
    } finally {
      collector.close();
      await pool.close({ timeoutMs: 0 });
    }
  });

  it('tracks open leaks until released, and dropped or reclaimed ones as history', async () => {
    const clock = new FakeClock();
    const collector = new MetricsCollector({ clock, recentLeaks: 1 });
    const pool = new Pool<TestResource>({ name: 'leaky', factory: new TestFactory().basic(), clock, leakDetection: 'full', leakWarnAfterMs: 100, reclaimAfterMs: 300 });
    pool.on('leak', () => undefined);
    try {
      await pool.acquire({ label: 'first' });
      await clock.advance(150);
      let snap = collector.snapshot()[0];
      assert.deepEqual(snap?.openLeaks.map((l) => [l.report.kind, l.report.label]), [['held', 'first']]);
      assert.match(snap?.openLeaks[0]?.message ?? '', /lease #\d+ of pool "leaky" held for/);
      await clock.advance(200); // past reclaimAfterMs: revoked
      snap = collector.snapshot()[0];
      assert.deepEqual(snap?.openLeaks, []);
      assert.deepEqual(snap?.recentLeaks.map((l) => [l.report.kind, l.report.label]), [['reclaimed', 'first']]);
      assert.deepEqual(snap?.leaksByKind, { held: 1, dropped: 0, reclaimed: 1 });
      await pool.acquire({ label: 'second' });
      await clock.advance(350);
      assert.deepEqual(collector.snapshot()[0]?.recentLeaks.map((l) => l.report.label), ['second'], 'only the latest recentLeaks are kept');
    } finally {
      collector.close();
      await pool.close({ timeoutMs: 0 });
    }
  });

  it('validates its options', () => {
    assert.throws(() => new MetricsCollector({ window: 5 } as never), (e: unknown) => e instanceof InvalidOptionError && /unknown option "window" for MetricsCollector; known options: clock, percentileCapacity, percentileWindowMs, recentLeaks/.test(e.message));
    assert.throws(() => new MetricsCollector({ percentileWindowMs: 0 }), /invalid option "percentileWindowMs": expected a number >= 1, got number 0/);
    assert.throws(() => new MetricsCollector({ percentileCapacity: 2.5 }), /invalid option "percentileCapacity": expected an integer >= 1, got number 2.5/);
    assert.throws(() => new MetricsCollector('fast' as never), /invalid options for MetricsCollector: expected an object, got the string "fast"/);
  });
});

describe('SlidingWindow', () => {
  it('gives nearest-rank percentiles of the observations inside the window, within its capacity', () => {
    const window = new SlidingWindow(1000, 1000);
    for (let i = 1; i <= 100; i++) window.add(i, i);
    assert.deepEqual(window.percentiles(100), { count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
    assert.equal(window.percentiles(1050).count, 51, 'observations older than 1000 ms dropped');
    const small = new SlidingWindow(1000, 3);
    for (const v of [5, 1, 9, 7]) small.add(0, v);
    assert.deepEqual(small.percentiles(0), { count: 3, p50: 7, p90: 9, p99: 9, max: 9 });
    assert.deepEqual(new SlidingWindow(10, 10).percentiles(0), { count: 0, p50: 0, p90: 0, p99: 0, max: 0 });
  });
});

describe('GrowthTracker', () => {
  it('reports how much the floor rose, once the window is covered', () => {
    const tracker = new GrowthTracker(400);
    tracker.add(0, 10);
    assert.equal(tracker.floorRise(0), null);
    for (let t = 100; t <= 400; t += 100) tracker.add(t, 10 + t / 10);
    assert.equal(tracker.floorRise(400), 30, 'a steady climb from 10 to 50: the floor of the last quarter (40) over that of the first (10)');
    tracker.add(500, 500);
    assert.equal(tracker.floorRise(500), 30, 'a spike in the latest sample does not lift the recent floor above the one before it');
    tracker.add(600, 20);
    assert.equal(tracker.floorRise(600), -10, 'back down: the floor fell');
    assert.equal(tracker.latest, 20);
  });
});
