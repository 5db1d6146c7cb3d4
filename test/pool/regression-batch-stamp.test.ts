import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AcquireTimeoutError, Pool } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

// Queued acquires share one stamp per iteration of the event loop (Pool#queueStamp, WaitStamp): read
// when the first queues, closed by an immediate once they all have. A deadline counts from the close,
// so it is never early. Before, a stamp read at the start of a batch made an acquire queued after the
// event loop blocked in that batch time out early, by as long as the loop was blocked.
describe('queued acquire timestamps', () => {
  async function setup(timeoutMs = 1000): Promise<{ pool: Pool<TestResource>; clock: FakeClock; release: () => void }> {
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, max: 1, acquireTimeoutMs: timeoutMs });
    const lease = await pool.acquire();
    return { pool, clock, release: () => { lease.release(); } };
  }

  it('never times out early: an acquire queued after the loop blocked in the same iteration gets its full deadline', async () => {
    const { pool, clock, release } = await setup();
    const outcomes: string[] = [];
    const track = (name: string, p: Promise<unknown>): Promise<void> => p.then(() => undefined, (e: unknown) => {
      assert.ok(e instanceof AcquireTimeoutError);
      outcomes.push(`${name} ${e.message.split(' (')[0] ?? ''}`);
    });
    const a = track('a', pool.acquire());
    await Promise.resolve();
    await Promise.resolve();
    clock.block(500); // the loop blocks for 500 ms in the same iteration, then b queues
    const b = track('b', pool.acquire());
    await clock.advance(999);
    assert.deepEqual(outcomes, [], 'b has waited 999 ms of its 1000: nothing may time out yet');
    await clock.advance(1);
    await Promise.all([a, b]);
    // a waited 1500 ms: late by the 500 the loop was blocked, as any timer would be.
    assert.deepEqual(outcomes, ['a acquire timed out after 1000 ms', 'b acquire timed out after 1000 ms']);
    release();
    await pool.close();
  });

  it('gives an acquire queued in a later iteration a fresh stamp', async () => {
    const { pool, clock, release } = await setup();
    const outcomes: string[] = [];
    const a = pool.acquire().catch(() => { outcomes.push('a'); });
    await flush(); // later iterations of the event loop: a's stamp is closed
    clock.block(500);
    const b = pool.acquire().catch(() => { outcomes.push('b'); });
    await clock.advance(500);
    assert.deepEqual(outcomes, ['a'], 'a: 1000 ms after its call');
    await clock.advance(499);
    assert.deepEqual(outcomes, ['a'], 'b still has 1 ms to go');
    await clock.advance(1);
    await Promise.all([a, b]);
    assert.deepEqual(outcomes, ['a', 'b']);
    release();
    await pool.close();
  });

  it('reports the time waited from the first read of the stamp, and leaves no immediate once closed', async () => {
    const { pool, clock, release } = await setup();
    const waited: number[] = [];
    pool.on('acquire', (e) => { waited.push(e.waitedMs); });
    const a = pool.acquire();
    clock.block(30);
    release(); // handed over in the same iteration, before the stamp closed
    (await a).release();
    assert.deepEqual(waited, [30]);
    await pool.close();
    assert.ok(!process.getActiveResourcesInfo().includes('Immediate'), 'the stamp closer is cleared by close()');
  });

  it('never times out before its timeout has passed since the call, whatever blocks and turns come between (property)', async () => {
    type Step = { kind: 'acquire'; timeoutMs: number | undefined } | { kind: 'block'; ms: number } | { kind: 'microtask' } | { kind: 'turn' } | { kind: 'advance'; ms: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), timeoutMs: fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }) }),
      fc.record({ kind: fc.constant('block' as const), ms: fc.integer({ min: 1, max: 200 }) }),
      fc.record({ kind: fc.constant('microtask' as const) }),
      fc.record({ kind: fc.constant('turn' as const) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 200 }) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 25 }), async (steps) => {
      const { pool, clock, release } = await setup(200);
      const calls: { at: number; timeoutMs: number; settledAt?: number }[] = [];
      const pending: Promise<void>[] = [];
      for (const s of steps) {
        if (s.kind === 'acquire') {
          const call: { at: number; timeoutMs: number; settledAt?: number } = { at: clock.now(), timeoutMs: s.timeoutMs ?? 200 };
          calls.push(call);
          pending.push(pool.acquire(s.timeoutMs === undefined ? undefined : { timeoutMs: s.timeoutMs }).then(
            () => { assert.fail('nothing is released: an acquire can only time out'); },
            (e: unknown) => {
              assert.ok(e instanceof AcquireTimeoutError);
              call.settledAt = clock.now();
            },
          ));
        } else if (s.kind === 'block') clock.block(s.ms);
        else if (s.kind === 'microtask') await Promise.resolve();
        else if (s.kind === 'turn') await flush(1);
        else await clock.advance(s.ms);
      }
      await clock.advance(1000);
      await Promise.all(pending);
      for (const call of calls) {
        assert.ok(call.settledAt !== undefined, 'every acquire timed out');
        assert.ok(call.settledAt - call.at >= call.timeoutMs, `timed out ${call.settledAt - call.at} ms after its call, timeout ${call.timeoutMs} ms`);
      }
      release();
      await pool.close();
    }), { numRuns: 150 });
  });
});
