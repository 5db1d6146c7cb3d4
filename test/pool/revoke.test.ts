import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaseRevokedError, Pool } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(max = 1): { pool: Pool<TestResource>; factory: TestFactory } {
  const factory = new TestFactory();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock: new FakeClock(), max, name: 'revoke' });
  return { pool, factory };
}

describe('CreateContext.revoke()', () => {
  it('takes a lent resource back at once: destroyed, slot freed, the lease dead but ending it is not an error', async () => {
    const { pool, factory } = setup();
    const lease = await pool.acquire();
    const waiting = pool.acquire();
    await flush();
    lease.resource.context.revoke(new Error('budget permit lost'));
    await flush();
    assert.deepEqual(factory.destroyed.map((r) => r.id), [1], 'destroyed while still lent');
    const next = await waiting; // the freed slot serves the waiter with a fresh resource
    assert.equal(next.resource.id, 2);
    assert.throws(() => lease.resource, (e: unknown) => e instanceof LeaseRevokedError && e.code === 'LG_LEASE_REVOKED'
      && /revoked by the pool's factory and destroyed \(Error: budget permit lost; /.test(e.message));
    assert.equal(lease.active, false);
    lease.release(); // the holder's finally block: a no-op, not a DoubleReleaseError
    assert.throws(() => { lease.release(); }, { code: 'LG_DOUBLE_RELEASE' }, 'a second release is still a misuse');
    const stats = pool.stats();
    assert.equal(stats.destroyed.error, 1);
    assert.equal(stats.inUse, 1);
    next.release();
    await pool.close();
  });

  it('lets the holder destroy() a revoked lease without error', async () => {
    const { pool } = setup();
    const lease = await pool.acquire();
    lease.resource.context.revoke('gone');
    lease.destroy(new Error('query failed'));
    assert.equal(pool.stats().destroyed.error, 1, 'destroyed once');
    await pool.close();
  });

  it('destroys an idle resource at once, and is a no-op once the resource is gone', async () => {
    const { pool, factory } = setup();
    const lease = await pool.acquire();
    const resource = lease.resource;
    lease.release();
    resource.context.revoke('gone');
    await flush();
    assert.equal(factory.destroyed.length, 1);
    resource.context.revoke('again');
    resource.context.invalidate('again');
    await flush();
    assert.equal(pool.stats().destroyed.error, 1);
    await pool.close();
    assert.equal(factory.destroyed.length, 1, 'destroyed exactly once');
  });

  it('discards a resource revoked before its creation finished', async () => {
    const contexts: { revoke: (reason?: unknown) => void }[] = [];
    const finishes: (() => void)[] = [];
    const destroyed: number[] = [];
    let seq = 0;
    const pool = new Pool<number>({
      clock: new FakeClock(),
      max: 1,
      factory: {
        create: (ctx) => new Promise<number>((resolve) => {
          contexts.push(ctx);
          const id = ++seq;
          finishes.push(() => { resolve(id); });
        }),
        destroy: (id) => { destroyed.push(id); },
      },
    });
    const waiting = pool.acquire();
    await flush();
    contexts[0]?.revoke('permit lost while connecting');
    finishes[0]?.();
    await flush();
    assert.deepEqual(destroyed, [1], 'the revoked resource is destroyed on arrival, never lent');
    assert.equal(finishes.length, 2, 'and the waiter gets a fresh create');
    finishes[1]?.();
    const lease = await waiting;
    assert.equal(lease.resource, 2);
    lease.release();
    await pool.close();
  });
});
