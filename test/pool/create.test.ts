import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireTimeoutError, CreateTimeoutError, Pool, type PoolOptions } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(options: Partial<PoolOptions<TestResource>> = {}, manual = false): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock } {
  const factory = new TestFactory();
  factory.manual = manual;
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'db', ...options });
  return { pool, factory, clock };
}

describe('creation', () => {
  it('creates only as many resources as waiters need (elision)', async () => {
    const { pool, factory } = setup({ max: 10 }, true);
    const first = pool.acquire();
    await flush();
    assert.equal(factory.createCalls, 1, 'one waiter, one create, even with max=10');
    factory.resolveCreate();
    const lease = await first;
    lease.release();
    // The idle resource covers the next acquire: no create at all.
    (await pool.acquire()).release();
    assert.equal(factory.createCalls, 1);
    await pool.close();
  });

  it('caps concurrent creations at maxConcurrentCreates', async () => {
    const { pool, factory } = setup({ max: 10, maxConcurrentCreates: 2 }, true);
    const acquires = Array.from({ length: 6 }, () => pool.acquire());
    await flush();
    assert.equal(factory.pendingCreates, 2);
    assert.equal(pool.stats().creating, 2);
    factory.resolveCreate();
    await flush();
    assert.equal(factory.pendingCreates, 2, 'a finished create makes room for the next');
    while (factory.pendingCreates > 0) {
      factory.resolveCreate();
      await flush();
    }
    const leases = await Promise.all(acquires);
    assert.equal(factory.createCalls, 6);
    for (const l of leases) l.release();
    await pool.close();
  });

  it('retries failed creations with exponential backoff, never in a busy loop', async () => {
    const { pool, factory, clock } = setup({ max: 4, acquireTimeoutMs: 60_000, createRetryInitialDelayMs: 100, createRetryMaxDelayMs: 5000 });
    factory.failCreates = Infinity;
    const waiting = pool.acquire().catch((e: unknown) => e);
    await clock.advance(10_000);
    // Full jitter under a doubling ceiling (100, 200, 400, ... 5000): over 10 s a busy loop would make
    // thousands of attempts; backoff allows a handful.
    assert.ok(factory.createCalls >= 3 && factory.createCalls <= 40, `createCalls=${factory.createCalls}`);
    const calls = factory.createCalls;
    await clock.advance(50_000);
    const error = await waiting;
    assert.ok(error instanceof AcquireTimeoutError);
    assert.equal(error.cause, factory.createError, 'the last creation error is the cause');
    assert.match(error.message, /creation is failing \(\d+ in a row\), last error: Error: connect ECONNREFUSED/);
    // Full jitter below a 5 s ceiling averages one attempt per 2.5 s: about 20 in 50 s.
    assert.ok(factory.createCalls - calls <= 60, `backed off: ${factory.createCalls - calls} attempts in 50 s`);
    assert.ok(pool.stats().createErrors >= 3);
    await pool.close();
  });

  it('recovers when creation starts working again', async () => {
    const { pool, factory, clock } = setup({ createRetryInitialDelayMs: 100 });
    factory.failCreates = 3;
    const waiting = pool.acquire();
    await clock.advance(5000);
    const lease = await waiting;
    assert.equal(factory.createCalls, 4);
    lease.release();
    await pool.close();
  });

  it('a creation that ends after its waiter gave up goes to the next waiter', async () => {
    const { pool, factory, clock } = setup({ max: 1 }, true);
    const impatient = pool.acquire({ timeoutMs: 100 }).catch((e: unknown) => e);
    await flush();
    await clock.advance(100);
    assert.ok((await impatient) instanceof AcquireTimeoutError);
    const patient = pool.acquire();
    await flush();
    assert.equal(factory.createCalls, 1, 'the creation in flight already covers the new waiter');
    factory.resolveCreate();
    const lease = await patient;
    assert.equal(lease.resource.id, 1);
    lease.release();
    await pool.close();
  });

  it('a creation that ends after every waiter gave up becomes idle, never lost', async () => {
    const { pool, factory, clock } = setup({ max: 1 }, true);
    const impatient = pool.acquire({ timeoutMs: 100 }).catch((e: unknown) => e);
    await clock.advance(100);
    await impatient;
    factory.resolveCreate();
    await flush();
    assert.equal(pool.stats().idle, 1);
    assert.equal(pool.stats().size, 1);
    await pool.close();
    assert.equal(factory.destroyed.length, 1);
  });

  it('times out a hanging creation (createTimeoutMs), aborts its signal and retries', async () => {
    const { pool, factory, clock } = setup({ createTimeoutMs: 1000, createRetryInitialDelayMs: 10 }, true);
    const waiting = pool.acquire();
    await flush();
    const firstContext = factory.created.length === 0 ? undefined : factory.created[0];
    assert.equal(firstContext, undefined);
    await clock.advance(1000);
    assert.equal(pool.stats().createErrors, 1);
    await clock.advance(20);
    assert.equal(factory.pendingCreates, 2, 'the hung create is still pending; a retry started');
    factory.rejectCreate(new Error('aborted'));
    factory.resolveCreate();
    const lease = await waiting;
    assert.equal(pool.stats().size, 1);
    lease.release();
    await pool.close();
  });

  it('carries a CreateTimeoutError as the cause when creation keeps hanging', async () => {
    const { pool, clock } = setup({ createTimeoutMs: 500, acquireTimeoutMs: 2000 }, true);
    const waiting = pool.acquire().catch((e: unknown) => e);
    await clock.advance(2000);
    const error = await waiting;
    assert.ok(error instanceof AcquireTimeoutError);
    assert.ok(error.cause instanceof CreateTimeoutError);
    assert.equal(error.cause.code, 'LG_CREATE_TIMEOUT');
    // Creations that ignore their abort signal are waited for at most destroyTimeoutMs.
    const destroyed = pool.destroy();
    await clock.advance(5000);
    await destroyed;
  });

  it('pre-fills min at start; ready() resolves once it is reached', async () => {
    const { pool, factory } = setup({ min: 3, max: 5 });
    await pool.ready();
    assert.equal(factory.createCalls, 3);
    assert.equal(pool.stats().idle, 3);
    await pool.close();
  });

  it('ready() rejects with the creation error', async () => {
    const factory = new TestFactory();
    factory.failCreates = 1;
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock: new FakeClock(), min: 2 });
    await assert.rejects(pool.ready(), (e: unknown) => e === factory.createError);
    await pool.close();
  });

  it('refills to min after every eviction', async () => {
    const { pool, factory } = setup({ min: 2 });
    await pool.ready();
    const lease = await pool.acquire();
    lease.destroy(new Error('broken pipe'));
    await flush();
    assert.equal(pool.stats().size, 2);
    assert.equal(factory.createCalls, 3);
    await pool.close();
  });

  it('evicts a resource that invalidates itself: at once when idle, on return when lent', async () => {
    const { pool, factory } = setup({ max: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const resourceOfA = a.resource;
    a.release();
    resourceOfA.context.invalidate(new Error('server closed the connection'));
    await flush();
    assert.equal(resourceOfA.destroyed, true);
    assert.equal(pool.stats().idle, 0);
    b.resource.context.invalidate(new Error('ECONNRESET'));
    assert.equal(b.resource.destroyed, false, 'a lent resource is not pulled from under its holder');
    b.release();
    await flush();
    assert.equal(factory.destroyed.length, 2);
    assert.equal(pool.stats().destroyed.error, 2);
    await pool.close();
  });
});

describe('the retry timer and the process lifetime', () => {
  it('is unref\'d while it only refills min, ref\'d once an acquire or ready() awaits it', async () => {
    const factory = new TestFactory();
    factory.failCreates = Infinity;
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock, min: 1, acquireTimeoutMs: Infinity, createRetryInitialDelayMs: 1000, createRetryMaxDelayMs: 1000, idleTimeoutMs: 0, maxLifetimeMs: 0, leakWarnAfterMs: 0 });
    await flush();
    assert.equal(pool.stats().createErrors, 1);
    assert.equal(clock.timers.ref, 0, 'refilling min alone never holds the process open');
    // A waiter with no deadline arrives during the backoff: only the retry timer can keep it alive.
    const waiting = pool.acquire().catch((e: unknown) => e);
    await flush();
    assert.equal(clock.timers.ref, 1);
    const closed = pool.close();
    await waiting;
    await closed;
    assert.equal(clock.timers.total, 0);

    const factory2 = new TestFactory();
    factory2.failCreates = Infinity;
    const pool2 = new Pool<TestResource>({ factory: factory2.basic(), clock, min: 1, createRetryInitialDelayMs: 1000, createRetryMaxDelayMs: 1000, idleTimeoutMs: 0, maxLifetimeMs: 0, leakWarnAfterMs: 0 });
    await flush();
    assert.equal(clock.timers.ref, 0);
    const ready = pool2.ready().catch((e: unknown) => e);
    assert.equal(clock.timers.ref, 1, 'ready() awaits the retry too');
    await clock.advance(1000);
    assert.equal(await ready, factory2.createError);
    await pool2.close();
  });
});
