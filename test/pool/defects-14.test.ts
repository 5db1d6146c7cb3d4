// Regression tests for the pool-core defects of issue 14 §2, each written before its fix.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, Pool, type Lease } from '../../src/index.js';
import { systemClock } from '../../src/internal/clock.js';
import { isPermanentDriverError } from '../../src/adapters/shared.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

const MAX = 2 ** 31 - 1;

describe('durations beyond what a timer can hold', () => {
  for (const option of ['acquireTimeoutMs', 'createTimeoutMs', 'validateTimeoutMs', 'destroyTimeoutMs', 'createRetryMaxDelayMs', 'housekeepingIntervalMs'] as const) {
    it(`rejects ${option} > 2^31-1 naming the option and the maximum`, () => {
      assert.throws(() => new Pool({ factory: new TestFactory().basic(), [option]: MAX + 1 }), (e: unknown) =>
        (e as { code?: string }).code === 'LG_INVALID_OPTION' && (e as { option?: string }).option === option && (e as Error).message.includes(String(MAX)));
    });
  }

  it('rejects acquire({ timeoutMs }) and close({ timeoutMs }) > 2^31-1; Infinity stays allowed', async () => {
    const pool = new Pool({ factory: new TestFactory().basic(), clock: new FakeClock() });
    await assert.rejects(pool.acquire({ timeoutMs: MAX + 1 }), (e: unknown) => (e as { code?: string }).code === 'LG_INVALID_OPTION' && (e as Error).message.includes(String(MAX)));
    await assert.rejects(pool.close({ timeoutMs: MAX + 1 }), { code: 'LG_INVALID_OPTION' });
    (await pool.acquire({ timeoutMs: Infinity })).release();
    await pool.close({ timeoutMs: Infinity });
  });

  it('the system clock never turns a long delay into a 1 ms timer', async () => {
    let fired = false;
    const handle = systemClock.setTimeout(() => { fired = true; }, MAX + 10, true);
    await new Promise((resolve) => setTimeout(resolve, 30));
    systemClock.clearTimeout(handle);
    assert.equal(fired, false);
  });
});

describe('stats() counts', () => {
  it('add up during a keep-alive probe of a resource that is then revoked', async () => {
    const factory = new TestFactory();
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: factory.withValidate(), clock, max: 2, keepAliveIntervalMs: 1000, idleTimeoutMs: 0, housekeepingIntervalMs: 100 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    b.release();
    factory.validateResult = 'hang';
    await clock.advance(1100); // b's resource is out for a probe
    (factory.created[1] as TestResource).context.revoke('gone');
    await flush();
    const s = pool.stats();
    assert.equal(s.size, s.idle + s.inUse, JSON.stringify(s));
    assert.deepEqual({ size: s.size, idle: s.idle, inUse: s.inUse }, { size: 1, idle: 0, inUse: 1 }, 'the lease is out');
    a.release();
    await pool.close();
  });

  it('always add up, whatever happens (property)', async () => {
    type Step = { kind: 'acquire' } | { kind: 'release'; pick: number } | { kind: 'revoke'; pick: number } | { kind: 'advance'; ms: number } | { kind: 'validate'; result: boolean | 'hang' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const) }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('revoke' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 1500 }) }),
      fc.record({ kind: fc.constant('validate' as const), result: fc.constantFrom(true, false, 'hang' as const) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
      const factory = new TestFactory();
      const clock = new FakeClock();
      const pool = new Pool<TestResource>({ factory: factory.withValidate(), clock, max: 3, keepAliveIntervalMs: 500, validateAfterIdleMs: 300, validateTimeoutMs: 400, idleTimeoutMs: 0, housekeepingIntervalMs: 100, acquireTimeoutMs: 1000 });
      const held: Lease<TestResource>[] = [];
      for (const s of steps) {
        if (s.kind === 'acquire') void pool.acquire().then((l) => { held.push(l); }, () => undefined);
        else if (s.kind === 'release') { const l = held.splice(s.pick % Math.max(1, held.length), 1)[0]; if (l?.active === true) l.release(); }
        else if (s.kind === 'revoke') factory.created[s.pick % Math.max(1, factory.created.length)]?.context.revoke('gone');
        else if (s.kind === 'validate') factory.validateResult = s.result;
        else await clock.advance(s.ms);
        await flush();
        const st = pool.stats();
        const out = held.filter((l) => l.active).length;
        assert.ok(st.idle >= 0 && st.inUse >= 0 && st.size === st.idle + st.inUse, JSON.stringify(st));
        assert.ok(st.inUse >= out, `inUse=${st.inUse} with ${out} leases out`);
      }
      factory.validateResult = true;
      for (const l of held) if (l.active) l.release();
      await pool.destroy();
    }), { numRuns: 60 });
  });
});

describe('bad arguments', () => {
  it('acquire(null), close(null) and use("x") reject with a stable code and harm no resource', async () => {
    const factory = new TestFactory();
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock: new FakeClock(), max: 1 });
    (await pool.acquire()).release();
    await assert.rejects(pool.acquire(null as never), { code: ErrorCodes.INVALID_OPTION });
    await assert.rejects(pool.acquire('fast' as never), { code: ErrorCodes.INVALID_OPTION });
    await assert.rejects(pool.use('x' as never), { code: ErrorCodes.INVALID_ARGUMENT });
    assert.equal(factory.destroyed.length, 0, 'no resource harmed');
    assert.equal(pool.stats().idle, 1);
    await assert.rejects(pool.close(null as never), { code: ErrorCodes.INVALID_OPTION });
    await pool.close();
  });

  it('ready() after close() rejects with LG_POOL_CLOSED', async () => {
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock() });
    await pool.ready();
    await pool.close();
    await assert.rejects(pool.ready(), { code: ErrorCodes.POOL_CLOSED });
  });
});

describe('a factory that returns the same object twice', () => {
  it('never destroys it while another lease still holds it', async () => {
    const shared = { id: 1, destroyed: false };
    const destroyedWhileLent: boolean[] = [];
    let lent = 0;
    const pool = new Pool<typeof shared>({
      clock: new FakeClock(),
      max: 2,
      factory: { create: () => Promise.resolve(shared), destroy: (r) => { destroyedWhileLent.push(lent > 0); r.destroyed = true; } },
    });
    const a = await pool.acquire();
    lent++;
    const b = await pool.acquire();
    lent++;
    a.destroy(new Error('broken')); // its entry goes; the object is still lent under b
    lent--;
    await flush();
    assert.deepEqual(destroyedWhileLent, [], 'not destroyed while b holds it');
    b.release();
    lent--;
    await pool.close();
    assert.deepEqual(destroyedWhileLent, [false, false], 'destroyed once per create, after the last holder');
  });
});

describe('permanent create errors', () => {
  it('reject waiting acquires at once with the error as cause; the pool keeps retrying in the background', async () => {
    const factory = new TestFactory();
    const clock = new FakeClock();
    let permanent = true;
    const base = factory.basic();
    const pool = new Pool<TestResource>({
      clock,
      max: 2,
      acquireTimeoutMs: 30_000,
      createRetryInitialDelayMs: 100,
      createRetryMaxDelayMs: 1000,
      factory: {
        ...base,
        create: (context) => {
          if (!permanent) return base.create(context);
          const error = Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' });
          return Promise.reject(context.permanent(error));
        },
      },
    });
    const started = clock.now();
    const outcome = await pool.acquire().then(() => 'lent', (e: unknown) => e);
    assert.equal((outcome as { code?: string }).code, ErrorCodes.CREATE_FAILED);
    assert.match((outcome as Error).message, /password authentication failed/);
    assert.equal(((outcome as Error).cause as { code?: string }).code, '28P01');
    assert.ok(clock.now() - started < 1000, 'failed fast, not after acquireTimeoutMs');
    await assert.rejects(pool.acquire(), { code: ErrorCodes.CREATE_FAILED }, 'a new acquire fails fast too');
    permanent = false; // the password is fixed: the background retry heals the pool
    await clock.advance(2000);
    const lease = await pool.acquire();
    lease.release();
    await pool.close();
  });

  it('the adapters recognise the drivers\' permanent codes', () => {
    for (const code of ['28P01', '28000', '3D000']) assert.equal(isPermanentDriverError(Object.assign(new Error('pg'), { code })), true, code);
    for (const errno of [1045, 1044, 1049]) assert.equal(isPermanentDriverError(Object.assign(new Error('mysql'), { errno })), true, String(errno));
    assert.equal(isPermanentDriverError(new Error('NOAUTH Authentication required.')), true);
    assert.equal(isPermanentDriverError(new Error('WRONGPASS invalid username-password pair')), true);
    assert.equal(isPermanentDriverError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), false);
  });
});

describe('a hung factory', () => {
  it('the acquire timeout says how long the creation has been running; close() reports what it abandoned', async () => {
    const factory = new TestFactory();
    factory.manual = true;
    factory.destroyHangs = true;
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock, max: 2, acquireTimeoutMs: 1000, createTimeoutMs: 60_000, destroyTimeoutMs: 500 });
    const error = pool.acquire().catch((e: unknown) => e as Error);
    await clock.advance(1000);
    assert.match((await error as Error).message, /1 creation running for 1000 ms \(createTimeoutMs=60000\)/);
    const closing = pool.close({ timeoutMs: 0 });
    await clock.advance(2000);
    const report = await closing;
    assert.equal(report.abandonedCreates.length, 1);
    assert.equal(report.abandonedCreates[0]?.runningMs, 1500);
  });
});
