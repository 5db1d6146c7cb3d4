import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBudget, PermitLostError, type Budget, type Permit } from '../../src/budget/index.js';
import { Pool, type Factory, type Lease, type PoolOptions } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(budgetLimit: number, options: Partial<PoolOptions<TestResource>> = {}): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock; budget: Budget } {
  const clock = new FakeClock();
  const factory = new TestFactory();
  const budget = createBudget({ limit: budgetLimit, key: 'remote', clock, acquireTimeoutMs: Infinity });
  const pool = new Pool<TestResource>({ name: 'db', factory: factory.basic(), clock, max: 10, budget, leakDetection: 'off', ...options });
  return { pool, factory, clock, budget };
}

describe('Pool option "budget"', () => {
  it('a pool of max 10 with a budget of 3 never has more than 3 resources, and serves every caller', async () => {
    const { pool, factory, budget } = setup(3);
    let most = 0;
    const leases = Array.from({ length: 10 }, () => pool.acquire({ timeoutMs: Infinity }));
    const served: Lease<TestResource>[] = [];
    for (const p of leases) void p.then((l) => served.push(l));
    for (let round = 0; round < 20 && served.length < 10; round++) {
      await flush();
      most = Math.max(most, factory.live.length, pool.stats().size);
      assert.ok(factory.live.length <= 3, `${factory.live.length} resources alive`);
      assert.ok(budget.stats().held <= 3);
      // Each served lease is returned after a round, which lets the next waiter in.
      served.shift()?.release();
    }
    await Promise.all(leases);
    assert.equal(factory.created.length, 3, 'resources are reused, never more than the budget allows');
    assert.equal(most, 3);
    for (const l of served) l.release();
    await pool.close();
    assert.equal(budget.stats().held, 0, 'close() gave every permit back');
  });

  it('gives the permit back only once the resource is destroyed', async () => {
    const clock = new FakeClock();
    const budget = createBudget({ limit: 1, clock, acquireTimeoutMs: Infinity });
    let created = 0;
    const closing: (() => void)[] = [];
    const pool = new Pool<number>({
      name: 'slow-close',
      clock,
      budget,
      factory: {
        create: () => Promise.resolve(++created),
        // A connection that takes its time to close, as a graceful TCP close does.
        destroy: () => new Promise<void>((resolve) => { closing.push(resolve); }),
      },
    });
    const lease = await pool.acquire();
    assert.equal(budget.stats().held, 1);
    lease.destroy(new Error('broken'));
    const next = pool.acquire({ timeoutMs: Infinity });
    await flush();
    assert.equal(closing.length, 1);
    assert.equal(budget.stats().held, 1, 'a destroy still in progress keeps its permit: the connection may still be open');
    assert.equal(created, 1, 'no new resource while the old one holds the permit');
    closing.shift()?.();
    const second = await next;
    assert.equal(created, 2);
    assert.equal(second.resource, 2);
    second.release();
    const closed = pool.close();
    await flush();
    closing.shift()?.();
    await closed;
    assert.equal(budget.stats().held, 0);
  });

  it('returns the permit when a resource is destroyed, so the next create can take it', async () => {
    const { pool, factory, budget } = setup(1);
    const lease = await pool.acquire();
    const waiter = pool.acquire({ timeoutMs: Infinity });
    await flush();
    lease.destroy(new Error('broken'));
    const second = await waiter;
    assert.equal(factory.created.length, 2);
    assert.equal(factory.destroyed.length, 1);
    assert.equal(budget.stats().held, 1);
    assert.deepEqual({ acquired: budget.stats().acquired, released: budget.stats().released }, { acquired: 2, released: 1 });
    second.release();
    await pool.close();
    assert.equal(budget.stats().held, 0);
  });

  it('returns the permit when create fails, and the retry takes it again', async () => {
    const { pool, factory, budget, clock } = setup(1);
    factory.failCreates = 2;
    const acquiring = pool.acquire({ timeoutMs: Infinity });
    await flush();
    assert.equal(factory.createCalls, 1);
    assert.equal(budget.stats().held, 0, 'the failed create gave its permit back');
    await clock.advance(10_000); // through the create backoff
    const lease = await acquiring;
    assert.equal(factory.createCalls, 3);
    assert.deepEqual({ held: budget.stats().held, acquired: budget.stats().acquired, released: budget.stats().released }, { held: 1, acquired: 3, released: 2 });
    lease.release();
    await pool.close();
    assert.equal(budget.stats().held, 0);
  });

  it('two pools sharing a budget of 3 hold at most 3 resources together', async () => {
    const clock = new FakeClock();
    const budget = createBudget({ limit: 3, clock, acquireTimeoutMs: Infinity });
    const fa = new TestFactory();
    const fb = new TestFactory();
    const a = new Pool<TestResource>({ name: 'a', factory: fa.basic(), clock, max: 5, budget });
    const b = new Pool<TestResource>({ name: 'b', factory: fb.basic(), clock, max: 5, budget });
    const la = await Promise.all([a.acquire(), a.acquire()]);
    const lb = await b.acquire();
    const waitingB = b.acquire({ timeoutMs: Infinity });
    await flush();
    assert.equal(fa.live.length + fb.live.length, 3);
    assert.equal(b.stats().creating, 1, 'b started a create, which waits for a permit');
    assert.equal(fb.createCalls, 1, 'the factory is not called before the permit is granted');
    la[0]?.release();
    await clock.advance(60_000); // a's idle resource times out and is destroyed: its permit goes to b
    const lb2 = await waitingB;
    assert.equal(fa.live.length + fb.live.length, 3);
    assert.equal(fb.live.length, 2);
    la[1]?.release();
    lb.release();
    lb2.release();
    await Promise.all([a.close(), b.close()]);
    assert.equal(budget.stats().held, 0);
  });

  it('a lost permit revokes its resource at once, idle or lent', async () => {
    const { pool, factory, budget } = setup(2);
    const [l1, l2] = await Promise.all([pool.acquire(), pool.acquire()]);
    l1.release();
    await flush();
    const reasons: unknown[] = [];
    pool.on('destroy', (e) => reasons.push(e.cause));
    await budget.close(); // revokes every permit: what a RedisBudget does when it cannot refresh in time
    await flush();
    assert.equal(factory.destroyed.length, 2, 'both went at once: without a permit a connection may not stay open');
    assert.equal(pool.stats().destroyed.error, 2);
    assert.throws(() => l2.resource, (e: unknown) => (e as { code?: string }).code === 'LG_LEASE_REVOKED' && /revoked by the pool's factory/.test((e as Error).message));
    l2.release(); // the holder's own release is a no-op, not a misuse
    assert.equal(pool.stats().inUse, 0);
    assert.equal(reasons.length, 2);
    assert.ok(reasons.every((r) => r instanceof PermitLostError), 'the permit loss is the destroy cause');
    await pool.close();
  });

  it('regression: a permit already lost when it is granted never backs a lent resource', async () => {
    // Seen in review: the wrapper listened for the permit's loss after the grant, so a permit lost
    // during the grant (Redis went away) never fired the listener and the connection lived on unpaid.
    const real = createBudget(2);
    let lostOnce = true;
    const budget: Budget = {
      key: real.key,
      limit: real.limit,
      acquire: async (): Promise<Permit> => {
        const permit = await real.acquire();
        if (!lostOnce) return permit;
        lostOnce = false;
        const controller = new AbortController();
        controller.abort(new PermitLostError(real.key, permit.id, 'lost during the grant'));
        return { id: permit.id, budgetKey: permit.budgetKey, validUntil: Infinity, lost: controller.signal, get released() { return permit.released; }, release: () => { permit.release(); } };
      },
      stats: () => real.stats(),
      usage: () => real.usage(),
      close: () => real.close(),
      [Symbol.asyncDispose]: () => real.close(),
    };
    const factory = new TestFactory();
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock: new FakeClock(), max: 1, budget });
    const lease = await pool.acquire();
    assert.equal(lease.resource.id, 2, 'the resource whose permit was already lost was destroyed on arrival, never lent');
    assert.equal(factory.destroyed[0]?.id, 1);
    lease.release();
    await pool.close();
    assert.equal(real.stats().held, 0, 'every permit given back');
    await real.close();
  });

  it('keeps the factory hooks working, bound to their object (class-based factories)', async () => {
    class Conn {
      readonly id: number;
      constructor(id: number) { this.id = id; }
    }
    class ConnFactory implements Factory<Conn> {
      readonly #counts = { created: 0, validated: 0, resets: 0 };
      get counts(): { created: number; validated: number; resets: number } { return { ...this.#counts }; }
      create(): Promise<Conn> { return Promise.resolve(new Conn(++this.#counts.created)); }
      destroy(): void { /* nothing to close */ }
      validate(): boolean { this.#counts.validated++; return true; }
      reset(): void { this.#counts.resets++; }
    }
    const factory = new ConnFactory();
    const budget = createBudget(1);
    const pool = new Pool<Conn>({ name: 'cls', factory, budget, validateAfterIdleMs: 0 });
    await pool.use(() => undefined);
    await flush(); // the reset finishes and the resource goes idle: the next borrow validates it
    await pool.use(() => undefined);
    assert.deepEqual(factory.counts, { created: 1, validated: 1, resets: 2 });
    await pool.close();
    assert.equal(budget.stats().held, 0);
  });

  it('rejects a value that is not a budget, naming the option', () => {
    const factory = new TestFactory();
    assert.throws(() => new Pool({ factory: factory.basic(), budget: 3 as never }), { code: 'LG_INVALID_OPTION', message: /invalid option "budget": expected a budget \(an object with acquire\(\), stats\(\) and close\(\).*got number 3/ });
    assert.throws(() => new Pool({ factory: factory.basic(), budget: {} as never }), { message: /invalid option "budget".*got an object/ });
  });
});

describe('budget clarity (issue 15 §2, pool side)', () => {
  it('stats() and the acquire-timeout message say how many creations wait for the budget, with its key, limit, held and waiting here and in the fleet', async () => {
    const clock = new FakeClock();
    const budget = createBudget({ limit: 1, key: 'registry', clock });
    const a = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, max: 2, budget, name: 'a' });
    const b = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, max: 2, budget, name: 'b', acquireTimeoutMs: 1000 });
    const held = await a.acquire();
    const waiting = b.acquire().then(() => new Error('lent'), (e: unknown) => e as Error);
    await flush();
    assert.deepEqual(b.stats().budget, { key: 'registry', limit: 1, heldHere: 1, waitingHere: 1, createsWaiting: 1, heldInFleet: 1, waitingInFleet: 1, fleetAgeMs: 0 });
    assert.equal(a.stats().budget?.createsWaiting, 0);
    await clock.advance(1000);
    const error = await waiting;
    assert.match(error.message, /budget "registry": 1 creation of this pool waiting for a permit; limit=1 held here=1 waiting here=1 held in fleet=1 waiting in fleet=1 \(fleet figures 0 ms old\)/);
    held.release();
    await a.close();
    await b.close();
    await budget.close();
    const plain = new Pool<TestResource>({ factory: new TestFactory().basic(), clock });
    assert.equal(plain.stats().budget, undefined, 'no budget, no budget field');
    await plain.close();
  });
});
