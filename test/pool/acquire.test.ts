import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  DoubleReleaseError,
  ForeignLeaseError,
  LeaseReleasedError,
  Pool,
  PoolClosedError,
  QueueFullError,
  type Lease,
} from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(options: Partial<ConstructorParameters<typeof Pool<TestResource>>[0]> = {}): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock } {
  const factory = new TestFactory();
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'db', ...options });
  return { pool, factory, clock };
}

describe('acquire and release', () => {
  it('lends a resource and takes it back for reuse', async () => {
    const { pool, factory } = setup();
    const lease = await pool.acquire();
    assert.equal(lease.resource.id, 1);
    assert.equal(lease.pool, 'db');
    assert.equal(pool.stats().inUse, 1);
    lease.release();
    assert.equal(pool.stats().idle, 1);
    const again = await pool.acquire();
    assert.equal(again.resource, factory.created[0]);
    again.release();
    assert.equal(factory.createCalls, 1);
    await pool.close();
  });

  it('a lease is no thenable (its prototype\'s own `then` is undefined): awaiting or resolving with it gives the lease', async () => {
    const { pool } = setup({ max: 1 });
    const lease = await pool.acquire();
    assert.equal(typeof (lease as unknown as { then?: unknown }).then, 'undefined');
    assert.equal(await Promise.resolve(lease), lease);
    const queued = pool.acquire();
    lease.release();
    const next = await queued;
    assert.equal(await (next as unknown as Promise<unknown>), next, 'await of a lease is the lease');
    assert.deepEqual(Object.keys(next), [], 'nothing enumerable added');
    next.release();
    await pool.close();
  });

  it('never lends more than max: the next acquire waits until a release', async () => {
    const { pool } = setup({ max: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const resourceOfA = a.resource;
    const got: { lease?: Lease<TestResource> } = {};
    const pending = pool.acquire().then((l) => (got.lease = l));
    await flush();
    assert.equal(got.lease, undefined);
    assert.equal(pool.stats().pending, 1);
    a.release();
    const third = await pending;
    assert.equal(third.resource, resourceOfA);
    assert.equal(pool.stats().inUse, 2);
    b.release();
    third.release();
    await pool.close();
  });

  it('serves waiters first-in first-out', async () => {
    const { pool } = setup({ max: 1 });
    const first = await pool.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3, 4, 5].map((n) => pool.acquire().then((lease) => {
      order.push(n);
      lease.release();
    }));
    await flush();
    first.release();
    await Promise.all(waiters);
    assert.deepEqual(order, [1, 2, 3, 4, 5]);
    await pool.close();
  });

  it('queues a new acquire behind existing waiters even if a resource is idle (no barging)', async () => {
    const factory = new TestFactory();
    factory.manual = true;
    const pool = new Pool<TestResource>({ factory: factory.basic(), max: 2, maxConcurrentCreates: 1 });
    const order: string[] = [];
    const a = pool.acquire().then((l) => { order.push('a'); return l; });
    await flush();
    factory.resolveCreate();
    const leaseA = await a;
    const b = pool.acquire().then((l) => { order.push('b'); return l; });
    await flush();
    leaseA.release();
    const c = pool.acquire().then((l) => { order.push('c'); return l; });
    (await b).release();
    await flush();
    factory.resolveCreate();
    (await c).release();
    assert.deepEqual(order, ['a', 'b', 'c']);
    await pool.close();
  });

  it('rejects an acquire at once when maxWaiting waiters already queue', async () => {
    const { pool } = setup({ max: 1, maxWaiting: 2 });
    const held = await pool.acquire();
    const w1 = pool.acquire();
    const w2 = pool.acquire();
    await assert.rejects(pool.acquire(), (e: unknown) => {
      assert.ok(e instanceof QueueFullError);
      assert.equal(e.code, 'LG_QUEUE_FULL');
      assert.match(e.message, /maxWaiting=2; pool "db": max=1 inUse=1 idle=0 pending=2 creating=0/);
      return true;
    });
    assert.equal(pool.stats().rejectedQueueFull, 1);
    held.release();
    (await w1).release();
    (await w2).release();
    await pool.close();
  });

  it('honours an AbortSignal while waiting, and one already aborted', async () => {
    const { pool } = setup({ max: 1 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    await flush();
    controller.abort(new Error('client went away'));
    await assert.rejects(waiting, (e: unknown) => {
      assert.ok(e instanceof AcquireAbortedError);
      assert.equal(e.code, 'LG_ACQUIRE_ABORTED');
      assert.equal((e.cause as Error).message, 'client went away');
      return true;
    });
    assert.equal(pool.stats().pending, 0);
    await assert.rejects(pool.acquire({ signal: AbortSignal.abort() }), AcquireAbortedError);
    // The aborted waiter is gone: a release goes to idle, not to a ghost.
    held.release();
    assert.equal(pool.stats().idle, 1);
    assert.equal(pool.stats().aborted, 2);
    await pool.close();
  });

  it('times out with a message that states the pool', async () => {
    const { pool, clock } = setup({ max: 2, acquireTimeoutMs: 2000 });
    const held = [await pool.acquire(), await pool.acquire()];
    const waiting = pool.acquire();
    const outcome = waiting.then(() => 'resolved', (e: unknown) => e);
    await clock.advance(1999);
    assert.equal(pool.stats().pending, 1);
    await clock.advance(1);
    const error = await outcome;
    assert.ok(error instanceof AcquireTimeoutError);
    assert.equal(error.code, 'LG_ACQUIRE_TIMEOUT');
    assert.match(error.message, /^acquire timed out after 2000 ms \(pool "db": max=2 inUse=2 idle=0 pending=1 creating=0\)/);
    assert.equal(error.cause, undefined);
    assert.equal(pool.stats().timeouts, 1);
    for (const l of held) l.release();
    await pool.close();
  });

  it('applies a per-call timeoutMs, independent of the default', async () => {
    const { pool, clock } = setup({ max: 1, acquireTimeoutMs: 10_000 });
    const held = await pool.acquire();
    const slow = pool.acquire().then((lease) => {
      lease.release();
      return 'slow';
    }, () => 'slow-timeout');
    const fast = pool.acquire({ timeoutMs: 100 }).then(() => 'fast', (e: unknown) => (e as Error).constructor.name);
    await clock.advance(100);
    assert.equal(await fast, 'AcquireTimeoutError');
    held.release();
    assert.equal(await slow, 'slow');
    await assert.rejects(pool.acquire({ timeoutMs: -5 }), /invalid acquire\(\) option "timeoutMs": expected a number > 0 \(or Infinity\), got number -5/);
    await pool.close();
  });

  it('rejects unknown and mistyped per-call options instead of ignoring them', async () => {
    const { pool } = setup();
    await assert.rejects(pool.acquire({ timeout: 100 } as never), { code: 'LG_INVALID_OPTION', message: 'unknown acquire() option "timeout"; known options: label, signal, site, timeoutMs' });
    await assert.rejects(pool.acquire({ label: 42 } as never), /invalid acquire\(\) option "label": expected a string or undefined, got number 42/);
    await assert.rejects(pool.acquire({ signal: { aborted: false } } as never), /invalid acquire\(\) option "signal": expected an AbortSignal or undefined, got an object/);
    assert.equal(pool.stats().acquired, 0, 'a rejected call changes nothing');
    (await pool.acquire({ label: 'ok', signal: new AbortController().signal, timeoutMs: 10 })).release();
    await pool.close();
  });

  it('use() releases on success and destroys on a thrown error', async () => {
    const { pool, factory } = setup();
    const value = await pool.use((resource) => resource.id * 10);
    assert.equal(value, 10);
    assert.equal(pool.stats().idle, 1);
    await assert.rejects(pool.use(() => {
      throw new Error('query failed: connection reset');
    }), /connection reset/);
    await flush();
    assert.equal(factory.destroyed.length, 1);
    assert.equal(pool.stats().destroyed.error, 1);
    assert.equal(pool.stats().size, 0);
    await pool.close();
  });

  it('supports await using: the lease is released at the end of the block', async () => {
    const { pool } = setup();
    {
      await using lease = await pool.acquire();
      assert.equal(pool.stats().inUse, 1);
      assert.equal(lease.active, true);
    }
    assert.equal(pool.stats().inUse, 0);
    {
      await using lease = await pool.acquire();
      lease.release(); // explicit release inside the block is fine: dispose is then a no-op
    }
    assert.equal(pool.stats().idle, 1);
    await pool.close();
  });

  it('throws clear errors on misuse, without changing the counts', async () => {
    const { pool } = setup();
    const other = setup().pool;
    const lease = await pool.acquire();
    lease.release();
    const before = pool.stats();
    assert.throws(() => {
      lease.release();
    }, (e: unknown) => e instanceof DoubleReleaseError && e.code === 'LG_DOUBLE_RELEASE' && /lease #1 of pool "db": it was already released/.test(e.message));
    assert.throws(() => {
      lease.destroy();
    }, DoubleReleaseError);
    assert.throws(() => lease.resource, (e: unknown) => e instanceof LeaseReleasedError && e.code === 'LG_LEASE_RELEASED');
    const foreign = await other.acquire();
    assert.throws(() => {
      pool.release(foreign);
    }, (e: unknown) => e instanceof ForeignLeaseError && e.code === 'LG_FOREIGN_LEASE' && /not lent by this pool/.test(e.message));
    assert.equal(foreign.active, true);
    assert.deepEqual(pool.stats(), before);
    foreign.release();
    await other.close();
    await pool.close();
  });

  it('rejects acquires once closed', async () => {
    const { pool } = setup();
    await pool.close();
    await assert.rejects(pool.acquire(), (e: unknown) => e instanceof PoolClosedError && e.code === 'LG_POOL_CLOSED' && /cannot acquire from pool "db": it was closed/.test(e.message));
  });

  it('lends the most recently used resource first by default (lifo), the least with fifo', async () => {
    for (const [idleOrder, expected] of [['lifo', 2], ['fifo', 1]] as const) {
      const { pool } = setup({ idleOrder });
      const a = await pool.acquire();
      const b = await pool.acquire();
      a.release();
      b.release();
      const next = await pool.acquire();
      assert.equal(next.resource.id, expected, idleOrder);
      next.release();
      await pool.close();
    }
  });
});

describe('acquire({ site })', () => {
  function callerSite(): Error {
    return new Error('acquire site'); // captured here: the line a caller hands to the pool
  }

  for (const leakDetection of ['off', 'sampled', 'full'] as const) {
    it(`records the site the caller captured, instead of its own, with leakDetection '${leakDetection}'`, async () => {
      const { pool } = setup({ leakDetection });
      const lease = await pool.acquire({ site: callerSite(), label: 'job' });
      assert.match(lease.site?.frame ?? 'null', /callerSite .*acquire\.test\.[jt]s:\d+:\d+/);
      assert.equal(pool.leases()[0]?.site, lease.site?.frame);
      assert.match(pool.leases()[0]?.stack ?? '', /callerSite/);
      lease.release();
      await pool.close();
    });
  }

  it('regression: acquire({ site }) formatted the site\'s stack on every acquire (its check read .stack), where it should be read only by a report', async () => {
    const { pool } = setup({ leakDetection: 'full' });
    let reads = 0;
    const site = new Error('acquire site');
    const captured = site.stack;
    Object.defineProperty(site, 'stack', { get: () => { reads++; return captured; } });
    for (let i = 0; i < 5; i++) (await pool.acquire({ site })).release();
    assert.equal(reads, 0, 'nothing read the stack of a site no report needed');
    const lease = await pool.acquire({ site });
    assert.match(lease.site?.frame ?? 'null', /acquire\.test\.[jt]s:\d+:\d+/);
    assert.ok(reads > 0, 'read once a report wants the line');
    lease.release();
    await pool.close();
  });

  it('rejects a site that is neither an Error nor an object with a string stack, naming the option', async () => {
    const { pool } = setup();
    await assert.rejects(pool.acquire({ site: 'here' } as never), /invalid acquire\(\) option "site": expected an Error \(or an object with a string stack\) or undefined, got the string "here"/);
    await assert.rejects(pool.acquire({ site: { stack: 5 } } as never), /invalid acquire\(\) option "site"/);
    assert.equal(pool.stats().acquired, 0);
    await pool.close();
  });
});
