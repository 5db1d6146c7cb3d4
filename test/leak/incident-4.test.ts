import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireTimeoutError, Pool, type LeakReport, type PoolOptions } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';
import { callerLocation, pointsAt } from '../support/site.js';

/**
 * Incident 4: an S3 client exhausted its 50 connections because an error path never closed a response;
 * every request then failed with "Timeout waiting for connection from pool", and it took a heap dump to
 * find the culprit. Here the same bug runs against a Lifeguard pool with its default leak detection.
 */

const FORGETFUL_LINE = { value: '' };
/**
 * What the leaked leases stay reachable from, as the S3 client's connection manager kept its unclosed
 * responses: a lease nothing references is a dropped one, which drop detection takes back after a GC, so
 * whether the pool ran dry depended on when the collector ran (failed once in CI).
 */
const stillReferenced: unknown[] = [];

async function getObject(pool: Pool<TestResource>, key: string, fail: boolean): Promise<string> {
  FORGETFUL_LINE.value = locate(); const lease = await pool.acquire({ label: `GET ${key}` });
  if (fail) {
    // The bug: the error path returns without releasing (the response body is never consumed or closed).
    stillReferenced.push(lease);
    throw new Error(`NoSuchKey: ${key}`);
  }
  const body = `object ${key} from connection ${lease.resource.id}`;
  lease.release();
  return body;
}

function locate(): string {
  return callerLocation();
}

/** Runs `count` requests, every `failEvery`-th on the leaking error path; returns how many timed out. */
async function traffic(pool: Pool<TestResource>, clock: FakeClock, count: number, failEvery: number): Promise<{ timeouts: AcquireTimeoutError[]; ok: number }> {
  const timeouts: AcquireTimeoutError[] = [];
  let ok = 0;
  for (let i = 0; i < count; i++) {
    const request = getObject(pool, `k${i}`, i % failEvery === failEvery - 1).then(() => {
      ok++;
    }, (error: unknown) => {
      if (error instanceof AcquireTimeoutError) timeouts.push(error);
    });
    await flush(1);
    await clock.advance(100);
    await Promise.race([request, clock.advance(0)]);
    // A timed-out request needs the clock to reach its deadline.
    if (pool.stats().pending > 0) await clock.advance(pool.options.acquireTimeoutMs);
    await request;
  }
  return { timeouts, ok };
}

function setup(options: Partial<PoolOptions<TestResource>>): { pool: Pool<TestResource>; clock: FakeClock; leaks: LeakReport[] } {
  stillReferenced.length = 0;
  const clock = new FakeClock();
  const factory = new TestFactory();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 's3', max: 50, acquireTimeoutMs: 5000, ...options });
  const leaks: LeakReport[] = [];
  pool.on('leak', (r) => leaks.push(r));
  return { pool, clock, leaks };
}

describe('incident 4: connections leaked on an error path', () => {
  it('default detection: the leak event and the acquire timeout name the forgetful line', async () => {
    const { pool, clock, leaks } = setup({});
    // 40 s of traffic with one error in ten: 40 leases leak slowly, as in production.
    const first = await traffic(pool, clock, 400, 10);
    assert.equal(first.timeouts.length, 0);
    await clock.advance(61_000);
    assert.ok(leaks.some((l) => l.kind === 'held'), 'held-too-long reports after leakWarnAfterMs');
    // Leak reports switch capture to full: from now on every leaked lease carries its site.
    const second = await traffic(pool, clock, 200, 10);
    assert.ok(second.timeouts.length > 0, 'the pool of 50 ran dry');
    const error = second.timeouts[0]!;
    assert.match(error.message, /acquire timed out after 5000 ms \(pool "s3": max=50 inUse=50 idle=0 pending=1 creating=0\)/);
    // The busiest captured site comes first, and it is the forgetful line.
    const bySite = /outstanding leases by acquire site: ([^,]+)/.exec(error.message)?.[1] ?? '';
    assert.ok(pointsAt(bySite, FORGETFUL_LINE.value), `${error.message}\n--- should name ${FORGETFUL_LINE.value}`);
    // Default detection captures while the pool is partly in use: nearly every holder names the line.
    assert.match(error.message, /lease #\d+ held \d+ ms \(label "GET k\d+"\), acquired at getObject/);
    assert.ok(Number(/getObject \([^)]*\) x(\d+)/.exec(error.message)?.[1] ?? 0) >= 45, error.message);
    await clock.advance(61_000);
    const named = leaks.filter((l) => pointsAt(l.site, FORGETFUL_LINE.value));
    assert.ok(named.length > 0, 'leak events name the forgetful line');
    assert.match(named[0]!.stack ?? '', /getObject/);
    await pool.destroy();
  });

  it('with reclaim on, the pool recovers: no timeouts at all', async () => {
    const { pool, clock, leaks } = setup({ reclaimAfterMs: 30_000, leakWarnAfterMs: 10_000 });
    const run = await traffic(pool, clock, 1500, 10);
    assert.equal(run.timeouts.length, 0, 'abandoned leases are revoked before the pool runs dry');
    assert.ok(pool.stats().revoked > 0);
    assert.ok(leaks.some((l) => l.kind === 'reclaimed' && pointsAt(l.site, FORGETFUL_LINE.value)));
    await pool.destroy();
  });

  it('without Lifeguard-style detection (off), the same bug times out with no culprit named', async () => {
    const { pool, clock } = setup({ leakDetection: 'off' });
    const run = await traffic(pool, clock, 800, 10);
    assert.ok(run.timeouts.length > 0);
    assert.ok(!pointsAt(run.timeouts[0]!.message, FORGETFUL_LINE.value));
    await pool.destroy();
  });
});
