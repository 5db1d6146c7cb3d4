import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool, ValidationTimeoutError, type PoolOptions } from '../../src/index.js';
import { Housekeeper } from '../../src/internal/housekeeper.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(options: Partial<PoolOptions<TestResource>> = {}, hooks: 'basic' | 'validate' | 'all' = 'basic'): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock } {
  const factory = new TestFactory();
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: hooks === 'basic' ? factory.basic() : hooks === 'validate' ? factory.withValidate() : factory.all(), clock, name: 'db', ...options });
  return { pool, factory, clock };
}

describe('validation', () => {
  it('validates on borrow only after validateAfterIdleMs of idleness', async () => {
    const { pool, factory, clock } = setup({ validateAfterIdleMs: 1000 }, 'validate');
    (await pool.acquire()).release();
    (await pool.acquire()).release();
    assert.equal(factory.validated.length, 0, 'recently used: no validation');
    await clock.advance(1000);
    (await pool.acquire()).release();
    assert.equal(factory.validated.length, 1);
    await pool.close();
  });

  it('destroys a resource that fails validation and carries on within the deadline', async () => {
    const { pool, factory, clock } = setup({ validateAfterIdleMs: 0 }, 'validate');
    (await pool.acquire()).release();
    factory.validateResult = false;
    const next = pool.acquire();
    await flush();
    factory.validateResult = true;
    await clock.advance(1);
    const lease = await next;
    assert.equal(lease.resource.id, 2, 'a fresh resource replaced the invalid one');
    assert.equal(pool.stats().validationFailures, 1);
    assert.equal(pool.stats().destroyed.validation, 1);
    lease.release();
    await pool.close();
  });

  it('bounds validation by validateTimeoutMs', async () => {
    const { pool, factory, clock } = setup({ validateAfterIdleMs: 0, validateTimeoutMs: 300 }, 'validate');
    (await pool.acquire()).release();
    factory.validateResult = 'hang';
    const failures: unknown[] = [];
    pool.on('validationFailed', (e) => failures.push(e.error));
    const next = pool.acquire();
    await clock.advance(300);
    factory.validateResult = true;
    const lease = await next;
    assert.ok(failures[0] instanceof ValidationTimeoutError);
    lease.release();
    await pool.close();
  });

  it('a validator that throws destroys the resource, it never escapes as an unhandled rejection', async () => {
    const { pool, factory, clock } = setup({ validateAfterIdleMs: 0 }, 'validate');
    (await pool.acquire()).release();
    factory.validateResult = 'throw';
    const next = pool.acquire();
    await flush();
    factory.validateResult = true;
    await clock.advance(1);
    (await next).release();
    assert.equal(pool.stats().validationFailures, 1);
    await pool.close();
  });
});

describe('the cleaner', () => {
  it('destroys resources idle past idleTimeoutMs, never below min', async () => {
    const { pool, factory, clock } = setup({ min: 1, max: 5, idleTimeoutMs: 10_000, housekeepingIntervalMs: 100 });
    await pool.ready();
    const leases = await Promise.all([1, 2, 3, 4].map(() => pool.acquire()));
    for (const l of leases) l.release();
    assert.equal(pool.stats().idle, 4);
    await clock.advance(9_000);
    assert.equal(pool.stats().idle, 4, 'not idle long enough yet');
    await clock.advance(1_200);
    assert.equal(pool.stats().size, 1, 'trimmed down to min');
    assert.equal(pool.stats().destroyed.idle, 3);
    await clock.advance(60_000);
    assert.equal(pool.stats().size, 1, 'min is never evicted for idleness');
    assert.equal(factory.destroyed.length, 3);
    await pool.close();
  });

  it('retires resources at maxLifetimeMs with negative jitter; a lent one when it comes back', async () => {
    const { pool, factory, clock } = setup({ max: 4, maxLifetimeMs: 10_000, maxLifetimeJitterMs: 2_000, idleTimeoutMs: 0, housekeepingIntervalMs: 100 });
    const leases = await Promise.all([1, 2, 3].map(() => pool.acquire()));
    const kept = leases.pop()!;
    for (const l of leases) l.release();
    await clock.advance(7_900);
    assert.equal(factory.destroyed.length, 0, 'nothing expires before maxLifetimeMs - jitter');
    await clock.advance(2_200);
    assert.equal(pool.stats().destroyed.lifetime, 2, 'idle ones retired by the housekeeper');
    assert.equal(kept.active, true, 'a lent resource is never pulled from under its holder');
    kept.release();
    await flush();
    assert.equal(pool.stats().destroyed.lifetime, 3);
    assert.equal(pool.stats().size, 0);
    await pool.close();
  });

  it('spreads expiries: jittered lifetimes differ', async () => {
    const { pool, factory, clock } = setup({ max: 20, maxLifetimeMs: 100_000, maxLifetimeJitterMs: 50_000, idleTimeoutMs: 0, housekeepingIntervalMs: 100 });
    const leases = await Promise.all(Array.from({ length: 20 }, () => pool.acquire()));
    for (const l of leases) l.release();
    const destroyedAt: number[] = [];
    pool.on('destroy', () => destroyedAt.push(clock.now()));
    for (let i = 0; i < 110; i++) await clock.advance(1000);
    assert.equal(factory.destroyed.length, 20);
    assert.ok(new Set(destroyedAt).size >= 5, `expiries spread over time: ${new Set(destroyedAt).size} distinct`);
    await pool.close();
  });

  it('probes idle resources with keep-alive and evicts those that fail, keeping idle order', async () => {
    const { pool, factory, clock } = setup({ max: 3, keepAliveIntervalMs: 5_000, idleTimeoutMs: 0, housekeepingIntervalMs: 100, validateAfterIdleMs: 60_000 }, 'validate');
    const leases = await Promise.all([1, 2, 3].map(() => pool.acquire()));
    for (const l of leases) l.release();
    await clock.advance(5_100);
    assert.equal(factory.validated.length, 3);
    factory.validateResult = false;
    await clock.advance(5_100);
    await flush();
    assert.equal(pool.stats().destroyed.validation, 3);
    assert.equal(pool.stats().size, 0);
    await pool.close();
  });

  it('resets a returned resource before lending it again; a failed reset destroys it', async () => {
    const { pool, factory } = setup({}, 'all');
    (await pool.acquire()).release();
    await flush();
    assert.equal(factory.resets.length, 1);
    assert.equal(pool.stats().idle, 1);
    factory.resetResult = 'throw';
    (await pool.acquire()).release();
    await flush();
    assert.equal(pool.stats().destroyed.error, 1);
    assert.equal(pool.stats().size, 0);
    await pool.close();
  });
});

describe('the shared housekeeper', () => {
  it('runs one timer for every pool of a clock, started by the first and stopped with the last', async () => {
    const clock = new FakeClock();
    const keeper = Housekeeper.for(clock);
    const factory = new TestFactory();
    assert.equal(keeper.active, false);
    const pools = [1, 2, 3].map(() => new Pool({ factory: factory.basic(), clock }));
    assert.equal(keeper.taskCount, 3);
    assert.equal(clock.timers.total, 1, 'one timer, whatever the number of pools');
    assert.equal(clock.timers.ref, 0, 'and it is unref\'d');
    await pools[0]!.close();
    await pools[1]!.close();
    assert.equal(keeper.active, true);
    await pools[2]!.close();
    assert.equal(keeper.active, false);
    assert.equal(clock.timers.total, 0);
  });

  it('keeps running when a factory, a validator or a listener throws', async () => {
    const { pool, factory, clock } = setup({ max: 2, keepAliveIntervalMs: 1000, idleTimeoutMs: 5000, housekeepingIntervalMs: 100, validateAfterIdleMs: 60_000 }, 'validate');
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.message); };
    process.on('warning', onWarning);
    pool.on('destroy', () => {
      throw new Error('listener bug');
    });
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const l of leases) l.release();
    factory.validateResult = 'throw';
    await clock.advance(1100);
    assert.equal(pool.stats().size, 0, 'both destroyed despite the throwing validator and listener');
    assert.equal(pool.stats().destroyed.validation, 2);
    // The pool is still consistent and usable.
    factory.validateResult = true;
    (await pool.acquire()).release();
    await clock.advance(6000);
    assert.equal(pool.stats().destroyed.idle, 1, 'housekeeping still runs');
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    assert.ok(warnings.some((w) => w.includes('listener bug')), 'the listener error is reported as a process warning');
    await pool.close();
  });
});

describe('eviction order', () => {
  it('counts mandatory expiries before idleness, so it never evicts what min must recreate', async () => {
    const { pool, factory, clock } = setup({ min: 1, max: 3, idleTimeoutMs: 1000, maxLifetimeMs: 10_000, maxLifetimeJitterMs: 0, housekeepingIntervalMs: 100 });
    await pool.ready(); // resource 1, created at 0 s, expires at 10 s
    await clock.advance(5_000);
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]); // 1, then 2 and 3 created
    const first = leases.find((l) => l.resource.id === 1)!;
    await clock.advance(4_000);
    for (const l of leases) if (l !== first) l.release(); // 2 and 3 idle from 9 s: idle-timed-out at 10 s
    await clock.advance(500);
    first.release(); // 1 idle from 9.5 s: not idle long enough, but its lifetime ends at 10 s
    await clock.advance(550);
    // At 10 s, 1 expires; of 2 and 3 only one may go for idleness, or the pool drops below min=1.
    assert.equal(pool.stats().destroyed.lifetime, 1);
    assert.equal(pool.stats().destroyed.idle, 1);
    assert.equal(pool.stats().size, 1, 'one survivor');
    assert.equal(factory.createCalls, 3, 'nothing had to be recreated');
    await pool.close();
  });
});
