import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Lease } from '../../src/index.js';
import { Pool, kAcquireInto, kHandOff, kWaiting, kWithdraw, type AcquireReceiver } from '../../src/pool/pool.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

class Recorder implements AcquireReceiver<TestResource> {
  readonly leases: Lease<TestResource>[] = [];
  readonly errors: Error[] = [];
  readonly times: number[] = [];
  onLease(lease: Lease<TestResource>, now: number): void {
    this.leases.push(lease);
    this.times.push(now);
  }
  onAcquireError(error: Error): void {
    this.errors.push(error);
  }
}

// The promise-free acquire that lifeguard/http uses on its hot path (one acquire per request).
describe('pool[kAcquireInto] (internal receiver acquire)', () => {
  it('delivers an idle resource synchronously, and a queued one when it is released, in FIFO order', async () => {
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1 });
    const warm = await pool.acquire();
    warm.release();
    const first = new Recorder();
    pool[kAcquireInto](first);
    assert.equal(first.leases.length, 1, 'fast path: delivered before returning');
    const second = new Recorder();
    const third = new Recorder();
    pool[kAcquireInto](second);
    pool[kAcquireInto](third);
    assert.equal(second.leases.length + third.leases.length, 0);
    first.leases[0]?.release();
    assert.equal(second.leases.length, 1, 'handed over within the release');
    second.leases[0]?.release();
    assert.equal(third.leases.length, 1);
    third.leases[0]?.release();
    await pool.close();
  });

  it('passes its clock reading with each lease, uses the caller\'s when given, and lists waiting receivers oldest first', async () => {
    const clock = new FakeClock();
    // With validate, the pool reads the clock precisely when it lends (as lifeguard/http's pools do).
    const pool = new Pool<TestResource>({ factory: { ...new TestFactory().basic(), validate: () => true }, clock, max: 1 });
    (await pool.acquire()).release();
    await clock.advance(100);
    const first = new Recorder();
    // The caller read the clock a moment ago: the pool uses that reading instead of its own.
    pool[kAcquireInto](first, undefined, clock.now() - 1);
    assert.deepEqual(first.times, [clock.now() - 1]);
    const second = new Recorder();
    const third = new Recorder();
    pool[kAcquireInto](second);
    const promised = pool.acquire();
    pool[kAcquireInto](third, undefined, clock.now());
    assert.deepEqual(pool[kWaiting](), [second, third], 'receivers only, in arrival order; the promise acquire is not listed');
    pool[kWithdraw](second);
    assert.deepEqual(pool[kWaiting](), [third]);
    // Synchronously, as in a request's run: the waiter must not time out meanwhile.
    clock.block(50);
    first.leases[0]?.release();
    assert.equal(second.leases.length, 0, 'withdrawn');
    (await promised).release();
    assert.deepEqual(third.times, [clock.now()], 'the reading the pool took when it lent');
    third.leases[0]?.release();
    assert.deepEqual(pool[kWaiting](), []);
    await pool.close();
  });

  it('hands a lent resource straight to the oldest waiting receiver, and refuses when it must go through a release', async () => {
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: { ...new TestFactory().basic(), validate: () => true }, clock, max: 1, leakDetection: 'off', maxLifetimeMs: 10_000, maxLifetimeJitterMs: 0 });
    const events: string[] = [];
    pool.on('release', () => { events.push('release'); });
    pool.on('acquire', () => { events.push('acquire'); });
    const first = new Recorder();
    pool[kAcquireInto](first);
    await flush();
    const lease = first.leases[0];
    assert.ok(lease !== undefined);
    assert.equal(pool[kHandOff](lease), false, 'nobody waiting');
    const second = new Recorder();
    pool[kAcquireInto](second);
    events.length = 0;
    clock.block(5);
    assert.equal(pool[kHandOff](lease), true);
    assert.equal(second.leases[0], lease, 'the same lease changes hands');
    assert.deepEqual(second.times, [clock.now()], 'with a fresh reading');
    assert.deepEqual(events, ['release', 'acquire'], 'observers see a release and an acquire');
    const stats = pool.stats();
    assert.equal(stats.pending, 0);
    assert.equal(stats.inUse, 1);
    assert.equal(stats.acquired, stats.released + 1);
    // A promise first in line gets a lease of its own: no hand-off.
    const promised = pool.acquire();
    assert.equal(pool[kHandOff](lease), false);
    lease.release();
    const other = await promised;
    assert.notEqual(other, lease);
    // Past its lifetime: it must be destroyed, not passed on.
    const third = new Recorder();
    pool[kAcquireInto](third);
    clock.block(10_000);
    assert.equal(pool[kHandOff](other), false);
    other.release();
    await flush();
    assert.equal(pool.stats().destroyed.lifetime, 1);
    assert.equal(third.leases.length, 1, 'served by a new resource');
    third.leases[0]?.release();
    await pool.close();
  });

  it('never hands off while the pool tracks leaks or closes', async () => {
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1 });
    const lease = await pool.acquire();
    const waiting = new Recorder();
    pool[kAcquireInto](waiting);
    assert.equal(pool[kHandOff](lease), false, 'leak detection (sampled by default) keeps its bookkeeping per lend');
    lease.release();
    waiting.leases[0]?.release();
    const quiet = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1, leakDetection: 'off' });
    const held = await quiet.acquire();
    const queued = new Recorder();
    quiet[kAcquireInto](queued);
    const closing = quiet.close();
    assert.equal(quiet[kHandOff](held), false, 'closing');
    held.release();
    await closing;
    await pool.close();
  });

  it('delivers errors: invalid options, timeouts and close', async () => {
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, max: 1 });
    const held = await pool.acquire();
    const bad = new Recorder();
    pool[kAcquireInto](bad, { timeout: 5 } as never);
    assert.equal(bad.errors[0]?.message, 'unknown acquire() option "timeout"; known options: label, signal, site, timeoutMs');
    const late = new Recorder();
    pool[kAcquireInto](late, { timeoutMs: 100 });
    await clock.advance(100);
    assert.equal((late.errors[0] as { code?: string } | undefined)?.code, 'LG_ACQUIRE_TIMEOUT');
    const closing = new Recorder();
    pool[kAcquireInto](closing);
    held.release();
    assert.equal(closing.leases.length, 1);
    closing.leases[0]?.release();
    const waiting = new Recorder();
    const again = await pool.acquire();
    pool[kAcquireInto](waiting);
    const closed = pool.close();
    assert.equal((waiting.errors[0] as { code?: string } | undefined)?.code, 'LG_POOL_CLOSED');
    again.release();
    await closed;
    const after = new Recorder();
    pool[kAcquireInto](after);
    assert.equal((after.errors[0] as { code?: string } | undefined)?.code, 'LG_POOL_CLOSED');
  });

  it('regression: receivers that hand their lease straight back do not recurse once per waiter', async () => {
    // Seen in review: 20,000 queued receivers whose onLease released at once overflowed the stack at
    // about 1,000 levels and left the pool stuck with a resource lent to nobody.
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1 });
    const held = await pool.acquire();
    let served = 0;
    const bouncer: AcquireReceiver<TestResource> = {
      onLease: (lease) => { served++; lease.release(); },
      onAcquireError: () => { assert.fail('no error expected'); },
    };
    for (let i = 0; i < 20_000; i++) pool[kAcquireInto](bouncer);
    held.release();
    assert.equal(served, 20_000);
    const stats = pool.stats();
    assert.deepEqual([stats.inUse, stats.idle, stats.pending], [0, 1, 0]);
    (await pool.acquire()).release();
    await pool.close();
  });

  it('withdraws a waiting receiver without telling it, so the pool stops working for it', async () => {
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1 });
    const held = await pool.acquire();
    const gone = new Recorder();
    const next = new Recorder();
    pool[kAcquireInto](gone);
    pool[kAcquireInto](next);
    assert.equal(pool.stats().pending, 2);
    assert.equal(pool[kWithdraw](gone), true);
    assert.equal(pool[kWithdraw](gone), false, 'only once');
    assert.equal(pool.stats().pending, 1);
    held.release();
    assert.deepEqual([gone.leases.length, gone.errors.length, next.leases.length], [0, 0, 1]);
    next.leases[0]?.release();
    await pool.close();
  });

  it('a receiver that throws cannot break the pool or the caller that released', async () => {
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock: new FakeClock(), max: 1 });
    const held = await pool.acquire();
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => { warnings.push(warning); };
    process.on('warning', onWarning);
    try {
      let got: Lease<TestResource> | undefined;
      pool[kAcquireInto]({ onLease: (lease) => { got = lease; throw new Error('receiver bug'); }, onAcquireError: () => undefined });
      held.release(); // must not throw here
      await flush();
      assert.match(warnings[0]?.message ?? '', /an acquire receiver threw: Error: receiver bug/, 'reported as a process warning instead');
      assert.equal(pool.stats().inUse, 1);
      got?.release();
      assert.equal(pool.stats().idle, 1);
    } finally {
      process.off('warning', onWarning);
    }
    await pool.close();
  });
});
