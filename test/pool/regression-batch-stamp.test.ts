import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireTimeoutError, Pool } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

// Queued acquires share one clock read per synchronous run (Pool#batchNow). These tests pin where a
// stamp ends: at the next microtask checkpoint, so a deadline never counts from an earlier turn.
describe('queued acquire timestamps', () => {
  async function setup(): Promise<{ pool: Pool<TestResource>; clock: FakeClock; release: () => void }> {
    const clock = new FakeClock();
    const pool = new Pool<TestResource>({ factory: new TestFactory().basic(), clock, max: 1, acquireTimeoutMs: 1000 });
    const lease = await pool.acquire();
    return { pool, clock, release: () => { lease.release(); } };
  }

  it('takes a fresh stamp after a microtask boundary, so a later acquire gets its full deadline', async () => {
    const { pool, clock, release } = await setup();
    const outcomes: string[] = [];
    const a = pool.acquire().catch((e: unknown) => { outcomes.push(`a ${(e as Error).message.split(' (')[0] ?? ''}`); });
    await Promise.resolve();
    await Promise.resolve();
    clock.block(500); // time passes before the next acquire, in a later microtask
    const b = pool.acquire().catch((e: unknown) => { outcomes.push(`b ${(e as Error).message.split(' (')[0] ?? ''}`); });
    await clock.advance(500); // a's deadline (1000 after its call)
    assert.deepEqual(outcomes, ['a acquire timed out after 1000 ms']);
    await clock.advance(499);
    assert.equal(outcomes.length, 1, 'b still has 1 ms to go: its deadline runs from its own call');
    await clock.advance(1);
    await Promise.all([a, b]);
    assert.deepEqual(outcomes, ['a acquire timed out after 1000 ms', 'b acquire timed out after 1000 ms']);
    release();
    await pool.close();
  });

  it('shares one stamp within a synchronous run (documented: blocking between two acquires counts against the later one)', async () => {
    const { pool, clock, release } = await setup();
    const errors: unknown[] = [];
    const a = pool.acquire().catch((e: unknown) => { errors.push(e); });
    clock.block(400); // the caller blocks the event loop between the two calls
    const b = pool.acquire().catch((e: unknown) => { errors.push(e); });
    await clock.advance(600);
    await flush();
    await Promise.all([a, b]);
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e instanceof AcquireTimeoutError));
    release();
    await pool.close();
  });
});
