import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool, type TimerHandle } from '../../src/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

/** Node's timers can fire up to about a millisecond before performance.now() says they are due. */
class EarlyTimerClock extends FakeClock {
  override setTimeout(fn: () => void, ms: number, unref: boolean): TimerHandle {
    return super.setTimeout(fn, ms > 1 ? ms - 1 : ms, unref);
  }
}

describe('regression: create retry after an early backoff timer', () => {
  it('retries at the end of the backoff, not at the next housekeeping run', async () => {
    const clock = new EarlyTimerClock();
    const factory = new TestFactory();
    factory.failCreates = 1;
    const pool = new Pool<TestResource>({ factory: factory.basic(), clock, createRetryInitialDelayMs: 100, createRetryMaxDelayMs: 100, housekeepingIntervalMs: 60_000, idleTimeoutMs: 0, maxLifetimeMs: 0, leakWarnAfterMs: 0 });
    const waiting = pool.acquire();
    // Full jitter: the retry is due within 100 ms; a slip to housekeeping would take 60 s.
    await clock.advance(150);
    assert.equal(factory.createCalls, 2, 'the retry ran when its backoff ended');
    (await waiting).release();
    await pool.close();
  });
});
