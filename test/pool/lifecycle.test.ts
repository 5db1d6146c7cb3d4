import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaseRevokedError, Pool, PoolClosedError, type PoolOptions } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';
import { activeResources, grown } from '../support/handles.js';

function setup(options: Partial<PoolOptions<TestResource>> = {}): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock } {
  const factory = new TestFactory();
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'db', ...options });
  return { pool, factory, clock };
}

describe('close()', () => {
  it('rejects waiters at once and waits for outstanding leases', async () => {
    const { pool, factory } = setup({ max: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const waiter = pool.acquire().catch((e: unknown) => e);
    await flush();
    let closed = false;
    const closing = pool.close().then((report) => {
      closed = true;
      return report;
    });
    assert.ok((await waiter) instanceof PoolClosedError);
    b.release(); // returning a lease during a graceful close is normal: it is destroyed
    await flush();
    assert.equal(factory.destroyed.length, 1);
    assert.equal(closed, false, 'still waiting for the other lease');
    a.release();
    const report = await closing;
    assert.deepEqual(report.outstanding, []);
    assert.equal(factory.destroyed.length, 2);
    assert.equal(pool.stats().destroyed.closed, 2);
  });

  it('destroys idle resources at once', async () => {
    const { pool, factory } = setup();
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const l of leases) l.release();
    await pool.close();
    assert.equal(factory.destroyed.length, 2);
  });

  it('destroys leases still out after timeoutMs and reports them', async () => {
    const { pool, factory, clock } = setup({ leakDetection: 'full' });
    const lease = await pool.acquire({ label: 'job-42' });
    const closing = pool.close({ timeoutMs: 1000 });
    await clock.advance(1000);
    const report = await closing;
    assert.equal(report.outstanding.length, 1);
    assert.equal(report.outstanding[0]?.label, 'job-42');
    assert.match(report.outstanding[0]?.site ?? '', /lifecycle\.test\.(ts|js):\d+:\d+/);
    assert.equal(factory.destroyed.length, 1);
    // The lease is dead: the pool closed under it.
    assert.throws(() => lease.resource, (e: unknown) => e instanceof PoolClosedError && /closed while the lease was out.*acquired at .*lifecycle\.test/.test(e.message));
    assert.throws(() => {
      lease.release();
    }, PoolClosedError);
  });

  it('never hangs on a destroy that never settles (destroyTimeoutMs)', async () => {
    const { pool, factory, clock } = setup({ destroyTimeoutMs: 500 });
    (await pool.acquire()).release();
    factory.destroyHangs = true;
    const closing = pool.close();
    await clock.advance(500);
    const report = await closing;
    assert.equal(report.destroyTimeouts, 1);
  });

  it('is idempotent: a second close returns the same promise', async () => {
    const { pool } = setup();
    const first = pool.close();
    assert.equal(pool.close(), first);
    await first;
    assert.equal(pool.closed, true);
  });
});

describe('destroy(error)', () => {
  it('fails everything at once, including lent resources', async () => {
    const { pool, factory } = setup({ max: 1 });
    const lease = await pool.acquire();
    const waiter = pool.acquire().catch((e: unknown) => e);
    await flush();
    const cause = new Error('shutting down: SIGTERM');
    const report = await pool.destroy(cause);
    const error = await waiter;
    assert.ok(error instanceof PoolClosedError);
    assert.equal(error.cause, cause);
    assert.equal(report.outstanding.length, 1);
    assert.equal(factory.destroyed.length, 1);
    assert.throws(() => lease.resource, PoolClosedError);
    await assert.rejects(pool.acquire(), (e: unknown) => e instanceof PoolClosedError && e.cause === cause);
  });

  it('cuts a graceful close short', async () => {
    const { pool } = setup();
    await pool.acquire();
    const closing = pool.close({ timeoutMs: Infinity });
    await flush();
    const destroyed = pool.destroy();
    assert.equal(destroyed, closing);
    const report = await closing;
    assert.equal(report.outstanding.length, 1);
  });
});

describe('stats()', () => {
  it('reports sizes and counters', async () => {
    const { pool, clock } = setup({ max: 2, acquireTimeoutMs: 100 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const timedOut = pool.acquire().catch(() => undefined);
    await clock.advance(100);
    await timedOut;
    a.release();
    b.destroy();
    await flush();
    const s = pool.stats();
    assert.equal(s.name, 'db');
    assert.equal(s.size, 1);
    assert.equal(s.idle, 1);
    assert.equal(s.inUse, 0);
    assert.equal(s.pending, 0);
    assert.equal(s.creating, 0);
    assert.equal(s.max, 2);
    assert.equal(s.created, 2);
    assert.equal(s.acquired, 2);
    assert.equal(s.released, 2);
    assert.equal(s.timeouts, 1);
    assert.equal(s.destroyed.error, 1);
    assert.equal(String(pool), 'Pool "db" (max=2 inUse=0 idle=1 pending=0 creating=0)');
    await pool.close();
  });
});

describe('events', () => {
  it('emits typed events for state changes', async () => {
    const { pool, clock } = setup({ max: 1, acquireTimeoutMs: 50 });
    const seen: string[] = [];
    for (const name of ['create', 'destroy', 'acquire', 'release', 'queue', 'timeout', 'close'] as const) {
      pool.on(name, () => seen.push(name));
    }
    const lease = await pool.acquire();
    const late = pool.acquire().catch(() => undefined);
    await clock.advance(50);
    await late;
    lease.release();
    await pool.close();
    // The first acquire queues while its resource is created; the second queues and times out.
    assert.deepEqual(seen, ['queue', 'create', 'acquire', 'queue', 'timeout', 'release', 'destroy', 'close']);
  });

  it('once() and off() detach listeners', async () => {
    const { pool } = setup();
    let count = 0;
    const listener = (): void => { count++; };
    pool.once('release', listener);
    (await pool.acquire()).release();
    (await pool.acquire()).release();
    assert.equal(count, 1);
    pool.on('release', listener);
    pool.off('release', listener);
    (await pool.acquire()).release();
    assert.equal(count, 1);
    await pool.close();
  });
});

describe('no handle left behind (incident 3)', () => {
  it('10,000 pools opened, used and closed leave the process at its baseline', async () => {
    const before = activeResources();
    const factory = new TestFactory();
    for (let i = 0; i < 10_000; i++) {
      const pool = new Pool<TestResource>({ factory: factory.basic(), max: 2, min: i % 2, idleTimeoutMs: 1000, maxLifetimeMs: 60_000 });
      const lease = await pool.acquire();
      lease.release();
      await pool.close();
    }
    await flush();
    assert.deepEqual(grown(before, activeResources()), {});
    assert.equal(factory.live.length, 0, 'every resource destroyed');
    assert.equal(factory.destroyed.length, factory.created.length, 'each exactly once');
  });

  it('a pool whose waiters timed out holds no timer', async () => {
    const before = activeResources();
    const factory = new TestFactory();
    const pool = new Pool<TestResource>({ factory: factory.basic(), max: 1, acquireTimeoutMs: 20 });
    const lease = await pool.acquire();
    await assert.rejects(pool.acquire());
    lease.release();
    await pool.close();
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('revoked-lease errors name the site', async () => {
    const { pool, clock } = setup({ leakDetection: 'full', reclaimAfterMs: 1000, leakWarnAfterMs: 0, housekeepingIntervalMs: 100 });
    pool.on('leak', () => undefined);
    const lease = await pool.acquire();
    await clock.advance(1100);
    assert.throws(() => lease.resource, (e: unknown) => e instanceof LeaseRevokedError && e.code === 'LG_LEASE_REVOKED' && /revoked it after it was held past reclaimAfterMs.*acquired at .*lifecycle\.test/.test(e.message));
    await pool.close();
  });
});

describe('close() and the process lifetime', () => {
  it('keeps a ref\'d timer while it waits for a destroy that hangs, and reports it', async () => {
    const { pool, factory, clock } = setup({ destroyTimeoutMs: 500 });
    (await pool.acquire()).release();
    factory.destroyHangs = true;
    const closing = pool.close();
    await flush();
    assert.ok(clock.timers.ref >= 1, 'the caller of close() must get its report, not a silent exit');
    await clock.advance(500);
    assert.equal((await closing).destroyTimeouts, 1);
    assert.equal(clock.timers.total, 0);
  });
});
