// With default options, a burst of leaked leases is named by its acquire site (issue 14 §3).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool, type Lease, type LeakReport } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

/** The leaking call site: every lease of the burst is acquired here and never released. */
function leakOne(pool: Pool<TestResource>, held: Promise<Lease<TestResource>>[]): void {
  const lease = pool.acquire();
  lease.catch(() => undefined); // beyond max, the burst's own acquires time out
  held.push(lease);
}

for (const max of [50, 10]) {
  describe(`a burst of leaked leases, default leak detection, max=${max}`, () => {
    it('the exhaustion error and the leak reports name the acquire site of at least 90% of the holders', async () => {
      const clock = new FakeClock();
      const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, name: `burst-${max}`, max });
      const leaks: LeakReport[] = [];
      pool.on('leak', (r) => { leaks.push(r); });
      const held: Promise<Lease<TestResource>>[] = [];
      for (let i = 0; i < 50; i++) leakOne(pool, held);
      await flush();
      const holders = pool.leases();
      assert.equal(holders.length, max);
      const named = holders.filter((l) => l.site?.includes('burst.test') === true).length;
      assert.ok(named >= 0.9 * max, `${named} of ${max} holders have their site`);
      const timeout = pool.acquire({ timeoutMs: 1000 }).then(() => new Error('lent'), (e: unknown) => e as Error);
      await clock.advance(31_000); // the burst's own waiters (beyond max) time out too
      const message = (await timeout).message;
      const bySite = /outstanding leases by acquire site: .*burst\.test\.[jt]s:\d+:\d+\)? x(\d+)/.exec(message);
      assert.ok(bySite !== null && Number(bySite[1]) >= 0.9 * max, message);
      await clock.advance(60_000); // past leakWarnAfterMs (default 60 s)
      const reported = leaks.filter((r) => r.kind === 'held');
      assert.equal(reported.length, max);
      assert.ok(reported.filter((r) => r.site?.includes('burst.test') === true).length >= 0.9 * max);
      await pool.destroy();
    });
  });
}

describe('leak reports without a listener', () => {
  it('are grouped by acquire site, and a reported lease that comes back gets a follow-up line', async () => {
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, name: 'grouped', max: 5, leakWarnAfterMs: 1000, leakDetection: 'full' });
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; });
    try {
      const held: Lease<TestResource>[] = [];
      for (let i = 0; i < 4; i++) held.push(await pool.acquire());
      await clock.advance(1500);
      const reports = lines.map((l) => JSON.parse(l) as { code: string; msg: string; count?: number; leaseIds?: number[] });
      assert.equal(reports.length, 1, `one line for one site: ${lines.join('')}`);
      assert.equal(reports[0]?.code, 'LG_LEAK_HELD');
      assert.deepEqual(reports[0]?.leaseIds, [1, 2, 3, 4]);
      assert.match(reports[0]?.msg ?? '', /4 leases of pool "grouped" held for/);
      lines.length = 0;
      await clock.advance(500);
      held[0]?.release();
      const followUp = lines.map((l) => JSON.parse(l) as { code: string; msg: string });
      assert.equal(followUp[0]?.code, 'LG_LEAK_RETURNED');
      const after = /lease #1 of pool "grouped" returned after (\d+) ms/.exec(followUp[0]?.msg ?? '');
      assert.ok(after !== null && Number(after[1]) >= 1500, followUp[0]?.msg);
    } finally {
      process.stderr.write = write;
    }
    await pool.destroy();
  });
});
