import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireTimeoutError, LeaseRevokedError, Pool, type Lease, type LeakReport, type PoolOptions } from '../../src/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';
import { callerLocation, pointsAt } from '../support/site.js';

function setup(options: Partial<PoolOptions<TestResource>> = {}): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock; leaks: LeakReport[] } {
  const factory = new TestFactory();
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'db', housekeepingIntervalMs: 100, ...options });
  const leaks: LeakReport[] = [];
  pool.on('leak', (report) => leaks.push(report));
  return { pool, factory, clock, leaks };
}

/** `file:line` of the caller, to compare with reported acquire sites. */
function here(): string {
  return callerLocation();
}

describe('layer 1: held too long', () => {
  it('raises one leak event naming the acquire site, then unleaked when it comes back', async () => {
    const { pool, clock, leaks } = setup({ leakDetection: 'full', leakWarnAfterMs: 5000 });
    const unleaked: number[] = [];
    pool.on('unleaked', (e) => unleaked.push(e.heldMs));
    const site = here(); const lease = await pool.acquire({ label: 'GET /report' });
    await clock.advance(4900);
    assert.equal(leaks.length, 0);
    await clock.advance(200);
    assert.equal(leaks.length, 1);
    const report = leaks[0]!;
    assert.equal(report.kind, 'held');
    assert.equal(report.pool, 'db');
    assert.equal(report.id, lease.id);
    assert.equal(report.label, 'GET /report');
    assert.ok(report.heldMs >= 5000);
    assert.ok(pointsAt(report.site, site), `${report.site ?? 'null'} names ${site}`);
    assert.match(report.stack ?? '', /leak\.test/);
    await clock.advance(10_000);
    assert.equal(leaks.length, 1, 'reported once, not on every housekeeping run');
    lease.release();
    assert.equal(unleaked.length, 1);
    assert.equal(pool.stats().leaks, 1);
    await pool.close();
  });

  it('writes one structured log line when nobody listens', async () => {
    const factory = new TestFactory();
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'quiet', leakDetection: 'full', leakWarnAfterMs: 1000, housekeepingIntervalMs: 100 });
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array): boolean => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const lease = await pool.acquire();
      await clock.advance(1100);
      lease.release();
    } finally {
      process.stderr.write = write;
    }
    assert.equal(lines.length, 2, 'the report, then the follow-up when the lease came back');
    assert.equal((JSON.parse(lines[1]!) as Record<string, unknown>)['code'], 'LG_LEAK_RETURNED');
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(record['level'], 'warn');
    assert.equal(record['code'], 'LG_LEAK_HELD');
    assert.equal(record['pool'], 'quiet');
    assert.match(String(record['site']), /leak\.test/);
    assert.match(String(record['msg']), /lease #1 of pool "quiet" held for \d+ ms/);
    await pool.close();
  });
});

describe('layer 2: dropped without release', () => {
  const gc = (globalThis as { gc?: () => void }).gc;

  it('reports a lease garbage-collected while out, destroys its resource and frees its slot', { skip: gc === undefined ? 'run with --expose-gc (npm test does)' : false }, async () => {
    const { pool, factory, clock, leaks } = setup({ max: 1, leakDetection: 'full', leakWarnAfterMs: 0 });
    const forget = async (): Promise<void> => {
      await pool.acquire({ label: 'forgotten' }); // the lease is dropped on the floor
    };
    await forget();
    await clock.advance(200); // housekeeping hands the young lease to the FinalizationRegistry
    for (let i = 0; i < 10 && leaks.length === 0; i++) {
      gc?.();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(leaks.length, 1);
    assert.equal(leaks[0]?.kind, 'dropped');
    assert.equal(leaks[0]?.label, 'forgotten');
    assert.match(leaks[0]?.site ?? '', /leak\.test/);
    assert.equal(factory.destroyed.length, 1, 'someone may still hold the raw resource: never lent again');
    assert.equal(pool.stats().dropped, 1);
    assert.equal(pool.stats().destroyed.leak, 1);
    const next = await pool.acquire(); // the slot is free again: max=1 does not shrink forever
    assert.equal(next.resource.id, 2);
    next.release();
    await pool.close();
  });

  // The pool holds each new lease by its entry's slot in an array it renews every 4,096 lends
  // (PoolCore.fresh): a renewal must keep the leases out, and a slot freed by a destroy serves the next entry.
  it('reports a lease dropped after thousands of lends, from an entry that took over a destroyed one\'s slot', { skip: gc === undefined ? 'run with --expose-gc (npm test does)' : false }, async () => {
    const { pool, factory, clock, leaks } = setup({ max: 2, leakDetection: 'full', leakWarnAfterMs: 0 });
    const broken = await pool.acquire();
    broken.destroy(new Error('broken')); // its slot is free for the next entry
    const kept = await pool.acquire(); // out across every renewal below
    for (let i = 0; i < 5000; i++) (await pool.acquire()).release();
    const forget = async (): Promise<void> => {
      await pool.acquire({ label: 'forgotten late' });
    };
    await forget();
    await clock.advance(200);
    for (let i = 0; i < 10 && leaks.length === 0; i++) {
      gc?.();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(leaks.map((l) => [l.kind, l.label]), [['dropped', 'forgotten late']]);
    assert.equal(factory.destroyed.length, 2, 'the broken one and the dropped one');
    assert.equal(kept.active, true, 'the lease still referenced is not reported');
    kept.release();
    await pool.close();
  });

  it('never reports a lease that is still referenced', { skip: gc === undefined ? 'run with --expose-gc' : false }, async () => {
    const { pool, clock, leaks } = setup({ leakDetection: 'full', leakWarnAfterMs: 0 });
    const kept = await pool.acquire();
    await clock.advance(200);
    gc?.();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(leaks.length, 0);
    kept.release();
    await pool.close();
  });
});

describe('layer 3: abandoned leases are reclaimed', () => {
  it('revokes a lease past reclaimAfterMs: resource destroyed, slot freed, later use throws with the site', async () => {
    const { pool, factory, clock, leaks } = setup({ max: 1, leakDetection: 'full', leakWarnAfterMs: 1000, reclaimAfterMs: 5000 });
    const lease = await pool.acquire();
    await clock.advance(5100);
    assert.deepEqual(leaks.map((l) => l.kind), ['held', 'reclaimed']);
    assert.equal(factory.destroyed.length, 1);
    assert.equal(pool.stats().revoked, 1);
    assert.equal(pool.stats().destroyed.revoked, 1);
    assert.throws(() => lease.resource, (e: unknown) => e instanceof LeaseRevokedError && /acquired at .*leak\.test/.test(e.message));
    assert.throws(() => {
      lease.release();
    }, LeaseRevokedError);
    const next = await pool.acquire();
    next.release();
    await pool.close();
  });
});

describe('forensics', () => {
  it('pool.leases() lists outstanding leases oldest first with held time, label and site', async () => {
    const { pool, clock } = setup({ leakDetection: 'full' });
    const a = await pool.acquire({ label: 'a' });
    await clock.advance(1000);
    const b = await pool.acquire({ label: 'b' });
    await clock.advance(500);
    const leases = pool.leases();
    assert.deepEqual(leases.map((l) => l.label), ['a', 'b']);
    assert.ok(leases[0]!.heldMs >= 1400 && leases[0]!.heldMs <= 1600, `${leases[0]!.heldMs}`);
    assert.match(leases[0]!.site ?? '', /leak\.test/);
    assert.ok(leases[0]!.acquiredAt instanceof Date);
    a.release();
    b.release();
    assert.deepEqual(pool.leases(), []);
    await pool.close();
  });

  it('the acquire timeout lists the three oldest leases and the busiest acquire sites', async () => {
    const { pool, clock } = setup({ max: 4, leakDetection: 'full', acquireTimeoutMs: 1000, leakWarnAfterMs: 0 });
    const held: Lease<TestResource>[] = [];
    for (let i = 0; i < 4; i++) {
      const site = here(); held.push(await pool.acquire({ label: `req-${i}` }));
      assert.ok(pointsAt(held[i]?.site?.frame, site));
      await clock.advance(100);
    }
    const waiting = pool.acquire().catch((e: unknown) => e);
    await clock.advance(1000);
    const error = await waiting;
    assert.ok(error instanceof AcquireTimeoutError);
    const lines = error.message.split('\n');
    assert.match(lines[0]!, /acquire timed out after 1000 ms \(pool "db": max=4 inUse=4 idle=0 pending=1 creating=0\)/);
    assert.equal(lines[1], '  oldest leases:');
    assert.match(lines[2]!, /lease #1 held \d+ ms \(label "req-0"\), acquired at .*leak\.test/);
    assert.match(lines[3]!, /label "req-1"/);
    assert.match(lines[4]!, /label "req-2"/);
    assert.match(lines[5]!, /outstanding leases by acquire site: .*leak\.test\.(ts|js):\d+:\d+\)? x4$/);
    for (const l of held) l.release();
    await pool.close();
  });
});

describe('sampled capture', () => {
  it('captures no site when the sample rate is 0, until trouble escalates to full capture', async () => {
    const { pool, clock, leaks } = setup({ leakDetection: 'sampled', leakSampleRate: 0, leakWarnAfterMs: 1000 });
    const first = await pool.acquire();
    assert.equal(first.site, null);
    await clock.advance(1100);
    assert.equal(leaks.length, 1);
    assert.equal(leaks[0]?.site, null, 'the first leak was not sampled');
    const second = await pool.acquire();
    assert.notEqual(second.site, null, 'after a leak report every acquire captures its site');
    first.release();
    second.release();
    await pool.close();
  });

  it("samples roughly leakSampleRate of a saturated pool's acquires", async () => {
    const { pool } = setup({ leakDetection: 'sampled', leakSampleRate: 0.1, max: 1 });
    let held = await pool.acquire();
    let sampled = 0;
    for (let i = 0; i < 2000; i++) {
      const next = pool.acquire(); // the one resource is out: this acquire waits (the pool is saturated)
      held.release();
      held = await next;
      if (held.site !== null) sampled++;
    }
    held.release();
    assert.ok(sampled > 100 && sampled < 320, `sampled ${sampled} of 2000 at rate 0.1`);
    await pool.close();
  });

  it("captures no site on a quiet pool's acquires (the uncontended hot path) unless escalated", async () => {
    const { pool, clock } = setup({ leakDetection: 'sampled', leakSampleRate: 0.5, leakWarnAfterMs: 1000 });
    for (let i = 0; i < 200; i++) {
      const lease = await pool.acquire();
      assert.equal(lease.site, null, `quiet acquire #${i} captured its site`);
      lease.release();
    }
    const leaked = await pool.acquire();
    await clock.advance(1100); // reported held too long: escalation
    leaked.release();
    const after = await pool.acquire();
    assert.notEqual(after.site, null, 'an escalated quiet pool captures every acquire');
    after.release();
    await pool.close();
  });

  it('captures every acquire, a quiet pool\'s too, with leakSampleRate 1', async () => {
    const { pool } = setup({ leakDetection: 'sampled', leakSampleRate: 1 });
    for (let i = 0; i < 20; i++) {
      const lease = await pool.acquire();
      assert.notEqual(lease.site, null);
      lease.release();
    }
    await pool.close();
  });

  it("'off' captures nothing and reports nothing", async () => {
    const { pool, clock, leaks } = setup({ leakDetection: 'off', leakWarnAfterMs: 1000 });
    const lease = await pool.acquire();
    assert.equal(lease.site, null);
    await clock.advance(5000);
    assert.equal(leaks.length, 0);
    lease.release();
    await pool.close();
  });
});
