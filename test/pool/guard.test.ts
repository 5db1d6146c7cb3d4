// CreateContext.guard(): a resource is never lent, nor handed from lease to lease, once its guard's validUntil has passed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool, type CreateContext, type Factory } from '../../src/index.js';
import { createBudget, type Budget, type Permit } from '../../src/budget/index.js';
import { kAcquireInto, kHandOff, type AcquireReceiver } from '../../src/pool/pool.js';
import type { Lease } from '../../src/pool/lease.js';
import { FakeClock, flush } from '../support/fake-clock.js';

interface Guarded { readonly id: number; readonly guard: { validUntil: number } }

/** A factory whose every resource registers its own fake guard, valid for `validMs` of the pool's clock. */
function guardedFactory(clock: FakeClock, validMs: number): { factory: Factory<Guarded>; made: Guarded[]; destroyed: number[] } {
  const made: Guarded[] = [];
  const destroyed: number[] = [];
  let id = 0;
  const factory: Factory<Guarded> = {
    create: (context: CreateContext) => {
      const resource = { id: ++id, guard: { validUntil: clock.now() + validMs } };
      context.guard(resource.guard);
      made.push(resource);
      return Promise.resolve(resource);
    },
    destroy: (r) => { destroyed.push(r.id); },
  };
  return { factory, made, destroyed };
}

describe('CreateContext.guard()', () => {
  it('revokes an idle resource whose guard ran out instead of lending it; the acquire gets a fresh one', async () => {
    const clock = new FakeClock();
    const g = guardedFactory(clock, 1000);
    const pool = new Pool<Guarded>({ factory: g.factory, clock, max: 2, housekeepingIntervalMs: 60_000, idleTimeoutMs: 0 });
    const a = await pool.acquire();
    a.release();
    clock.block(1000); // exactly validUntil: expired (validUntil <= now); no housekeeping ran
    const b = await pool.acquire();
    assert.equal(b.resource.id, 2, 'the expired one was never lent');
    assert.deepEqual(g.destroyed, [1]);
    assert.equal(pool.stats().destroyed.revoked, 1);
    b.release();
    await pool.close();
  });

  it('a guard extended in time keeps its resource lendable', async () => {
    const clock = new FakeClock();
    const g = guardedFactory(clock, 1000);
    const pool = new Pool<Guarded>({ factory: g.factory, clock, max: 1, housekeepingIntervalMs: 60_000, idleTimeoutMs: 0 });
    const a = await pool.acquire();
    a.release();
    (g.made[0] as Guarded).guard.validUntil = clock.now() + 5000; // a refresh moved it
    clock.block(2000);
    const b = await pool.acquire();
    assert.equal(b.resource.id, 1);
    b.release();
    await pool.close();
  });

  it('a lease returned after its guard ran out is not handed to the waiter; the waiter keeps its place and gets a fresh resource', async () => {
    const clock = new FakeClock();
    const g = guardedFactory(clock, 1000);
    const pool = new Pool<Guarded>({ factory: g.factory, clock, max: 1, housekeepingIntervalMs: 60_000, idleTimeoutMs: 0 });
    const a = await pool.acquire();
    const first = pool.acquire();
    const second = pool.acquire();
    await flush();
    clock.block(1500);
    a.release();
    const b = await first;
    assert.equal(b.resource.id, 2, 'the oldest waiter got a new resource');
    assert.deepEqual(g.destroyed, [1]);
    assert.equal(pool.stats().pending, 1, 'the second waiter still waits, in its place');
    b.release();
    (await second).release();
    await pool.close();
  });

  it('kHandOff refuses a resource whose guard ran out', async () => {
    const clock = new FakeClock();
    const g = guardedFactory(clock, 1000);
    const pool = new Pool<Guarded>({ factory: g.factory, clock, max: 1, leakDetection: 'off', housekeepingIntervalMs: 60_000, idleTimeoutMs: 0 });
    const a = await pool.acquire();
    const got: Lease<Guarded>[] = [];
    const receiver: AcquireReceiver<Guarded> = { onLease: (l) => { got.push(l); }, onAcquireError: (e) => { throw e; } };
    pool[kAcquireInto](receiver);
    await flush();
    clock.block(1000);
    assert.equal(pool[kHandOff](a), false);
    a.release();
    await flush();
    assert.equal(got[0]?.resource.id, 2);
    got[0]?.release();
    await pool.close();
  });

  it('the budget option registers each permit as the guard of the resource it paid for', async () => {
    const clock = new FakeClock();
    const real = createBudget({ limit: 2, clock });
    const permits: Permit[] = [];
    const budget: Budget = {
      key: real.key,
      limit: real.limit,
      acquire: async (options) => {
        const permit = await real.acquire(options);
        permits.push(permit);
        return permit;
      },
      stats: () => real.stats(),
      usage: () => real.usage(),
      close: () => real.close(),
      [Symbol.asyncDispose]: () => real.close(),
    };
    const g = guardedFactory(clock, 60_000); // its own guard too: both apply
    const pool = new Pool<Guarded>({ factory: g.factory, clock, max: 2, budget, housekeepingIntervalMs: 60_000, idleTimeoutMs: 0 });
    const a = await pool.acquire();
    a.release();
    assert.equal(permits.length, 1);
    assert.equal(permits[0]?.validUntil, Infinity, 'an in-process permit is valid until released');
    // A store-backed budget lowers validUntil when it cannot refresh: simulated on the permit itself.
    (permits[0] as { validUntil: number }).validUntil = clock.now();
    const b = await pool.acquire();
    assert.equal(b.resource.id, 2);
    assert.equal(pool.stats().destroyed.revoked, 1);
    b.release();
    await pool.close();
    await real.close();
  });

  it('rejects a guard without a numeric validUntil, naming it', async () => {
    const clock = new FakeClock();
    const pool = new Pool<object>({
      clock,
      max: 1,
      createRetryInitialDelayMs: 1,
      factory: { create: (context) => { context.guard({} as never); return Promise.resolve({}); }, destroy: () => undefined },
    });
    const errors: unknown[] = [];
    pool.on('createError', (e) => { errors.push(e.error); });
    void pool.acquire({ timeoutMs: 50 }).catch(() => undefined);
    await flush();
    assert.match(String(errors[0]), /CreateContext\.guard\(\) argument: expected an object with a numeric validUntil, got an object/);
    await pool.close();
  });
});
