/**
 * Issue 15 §1 at the pool level: a holder that reaches the protected server only through a `Pool` with
 * `budget: redisBudget` (one `pool.use()` per request, CPU work between requests) never sends a request
 * after its permit went to another process, however long it was stalled: the pool compares the permit's
 * `validUntil` before lending and before handing over. The cycles are those of test/budget/stall.test.ts
 * (test/support/stall-run.ts): SIGSTOP for 3x the TTL while this process waits for the permit, SIGCONT,
 * then this process holds the permit for 150 ms while the server attributes every request to its process
 * from the kernel's socket tables.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requireService } from '../support/services.js';
import { stallCycles, stallSuiteHooks } from '../support/stall-run.js';

const redisCheck = await requireService('redis');

describe('a holder going through a budgeted Pool never uses a permit that has gone to someone else', { skip: redisCheck.skip, timeout: 240_000 }, () => {
  const prefix = stallSuiteHooks(redisCheck.skip === false);

  it('control: a lease held across requests (its raw socket used outside the pool) is used after the permit changed hands', async (t) => {
    const run = await stallCycles('validUntil', 8, prefix(), 'raw-lease');
    t.diagnostic(`raw lease across requests: ${run.cyclesWithViolation} of ${run.cycles} cycles with a use after the permit changed hands (${run.violations} requests, up to ${run.worstAfterContMs} ms after SIGCONT), ${run.ms} ms`);
    assert.ok(run.violations > 0, 'no use after the permit changed hands: this test would not catch the bug');
  });

  // 40 cycles, not the 50 of stall.test.ts: a cycle takes ~2.1 s here (a 1.8 s stop, the 150 ms tenure, the
  // holder's 10 uses), so 50 made this file 2 min 7 s on the shared 2-core machine, too close to the
  // ~2.5 min each file may take; 40 keep it near 1 min 45 s.
  it('40 SIGSTOP/SIGCONT cycles of 3x the TTL: 0 uses after the permit changed hands through pool.use()', async (t) => {
    const run = await stallCycles('validUntil', 40, prefix(), 'pool');
    t.diagnostic(`through the pool: ${run.violations} uses after the permit changed hands in ${run.cycles} cycles; ${run.raced} stops fell between the pool's check and the return of the write, ${run.racedViolations} of them before the system call (counted apart); ${run.voided} cycles run again (the waiting process lost its own permit); the holder made ${run.holderUses} uses; the server saw at most ${run.maxConnections} connections at once; ${run.ms} ms; pool.use() call to write returned: ${run.windowUs} µs on average`);
    assert.equal(run.violations, 0, `${run.violations} requests of the holder in ${run.cyclesWithViolation} cycles, up to ${run.worstAfterContMs} ms after SIGCONT`);
    assert.ok(run.holderUses > 40 * 10, 'the holder did not work between stalls');
    // The residual window no lend check can close: the stop falls after the pool's comparison and before
    // the write (lease object, promise settling, the callback's own code: a few hundred µs of a ~7 ms
    // iteration, against a few µs when the holder compares right before its write). Measured 2-3 such uses
    // in 50 cycles here; more than 5 means the pool lends well after its check.
    assert.ok(run.racedViolations <= 5, `${run.racedViolations} stops fell between pool.use() and the system call with a use after the permit changed hands: the window is not a few hundred µs`);
  });
});
