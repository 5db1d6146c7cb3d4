/**
 * Issue 15 §1: a holder stalled past its permit's TTL never uses the permit once it has gone to someone
 * else. A child process holds the one permit of a budget and uses a connection to the protected server in
 * a loop; the test process waits for the permit, SIGSTOPs the holder for 3x the TTL, takes the permit when
 * it expires, and holds it past the holder's SIGCONT. The server attributes every request to its process
 * from the kernel's socket tables, and no request of the holder may arrive while the test holds the permit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requireService } from '../support/services.js';
import { stallCycles, stallSuiteHooks } from '../support/stall-run.js';

const redisCheck = await requireService('redis');

describe('a stalled holder never uses a permit that has gone to someone else', { skip: redisCheck.skip, timeout: 240_000 }, () => {
  const prefix = stallSuiteHooks(redisCheck.skip === false);

  it('control: a holder that trusts permit.lost alone (a timer) uses the permit after it changed hands', async (t) => {
    const run = await stallCycles('lost', 14, prefix());
    t.diagnostic(`lost signal only: ${run.cyclesWithViolation} of ${run.cycles} cycles with a use after the permit changed hands (${run.violations} requests, up to ${run.worstAfterContMs} ms after SIGCONT)`);
    assert.ok(run.violations > 0, 'no use after the permit changed hands: this test would not catch the bug');
  });

  it('50 SIGSTOP/SIGCONT cycles of 3x the TTL: 0 uses after the permit changed hands when the holder checks permit.validUntil', async (t) => {
    const run = await stallCycles('validUntil', 50, prefix());
    t.diagnostic(`validUntil checked: ${run.violations} uses after the permit changed hands in ${run.cycles} cycles; ${run.raced} stops fell between a check and the return of its write, ${run.racedViolations} of them before the system call (counted apart); ${run.voided} cycles run again (the waiting process lost its own permit); the holder made ${run.holderUses} uses; the server saw at most ${run.maxConnections} connections at once (the stalled holder's idle one counts)`);
    assert.equal(run.violations, 0, `${run.violations} requests of the holder in ${run.cyclesWithViolation} cycles, up to ${run.worstAfterContMs} ms after SIGCONT`);
    assert.ok(run.holderUses > 50 * 10, 'the holder did not work between stalls');
    assert.ok(run.racedViolations <= 1, `${run.racedViolations} stops fell between the comparison and the system call: the window is not microseconds`);
  });
});
