import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BudgetAbortedError, BudgetClosedError, BudgetTimeoutError, InProcessBudget, PermitLostError, createBudget, type Permit } from '../../src/budget/index.js';
import { InvalidOptionError, LifeguardError } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';

function setup(limit = 2, acquireTimeoutMs = 1000): { budget: InProcessBudget; clock: FakeClock } {
  const clock = new FakeClock();
  return { budget: new InProcessBudget({ limit, key: 'registry', clock, acquireTimeoutMs }), clock };
}

/** Tracks which of several acquires have settled, and how. */
function watch(promise: Promise<Permit>): { state: 'pending' | 'granted' | 'rejected'; permit: Permit | null; error: unknown } {
  const out: { state: 'pending' | 'granted' | 'rejected'; permit: Permit | null; error: unknown } = { state: 'pending', permit: null, error: null };
  promise.then((p) => { out.state = 'granted'; out.permit = p; }, (e: unknown) => { out.state = 'rejected'; out.error = e; });
  return out;
}

describe('InProcessBudget', () => {
  it('grants up to the limit at once, then serves waiters first-in first-out as permits come back', async () => {
    const { budget } = setup(2);
    const a = await budget.acquire();
    const b = await budget.acquire();
    const waiters = [watch(budget.acquire()), watch(budget.acquire()), watch(budget.acquire())];
    await flush();
    assert.deepEqual(waiters.map((w) => w.state), ['pending', 'pending', 'pending']);
    assert.deepEqual({ held: budget.stats().held, waiting: budget.stats().waiting }, { held: 2, waiting: 3 });
    b.release();
    await flush();
    assert.deepEqual(waiters.map((w) => w.state), ['granted', 'pending', 'pending']);
    a.release();
    await flush();
    assert.deepEqual(waiters.map((w) => w.state), ['granted', 'granted', 'pending']);
    waiters[0]?.permit?.release();
    await flush();
    assert.deepEqual(waiters.map((w) => w.state), ['granted', 'granted', 'granted']);
    assert.equal(budget.stats().held, 2);
    assert.deepEqual(await budget.usage(), { key: 'registry', limit: 2, held: 2, waiting: 0 });
  });

  it('release is idempotent: a second release does not free a second slot', async () => {
    const { budget } = setup(1);
    const a = await budget.acquire();
    a.release();
    a.release();
    const b = await budget.acquire();
    const c = watch(budget.acquire());
    await flush();
    assert.equal(c.state, 'pending', 'a double release freed a slot that b holds');
    assert.equal(a.released, true);
    b.release();
    await flush();
    assert.equal(c.state, 'granted');
    assert.deepEqual({ acquired: budget.stats().acquired, released: budget.stats().released }, { acquired: 3, released: 2 });
  });

  it('times out with LG_BUDGET_TIMEOUT naming the key, limit, held and waiting, and the line moves on', async () => {
    const { budget, clock } = setup(1, 1000);
    const holder = await budget.acquire();
    const first = watch(budget.acquire());
    const second = watch(budget.acquire({ timeoutMs: 5000 }));
    await clock.advance(999);
    assert.equal(first.state, 'pending');
    await clock.advance(1);
    assert.equal(first.state, 'rejected');
    const error = first.error as BudgetTimeoutError;
    assert.ok(error instanceof BudgetTimeoutError);
    assert.ok(error instanceof LifeguardError, 'budget errors are Lifeguard errors');
    assert.equal(error.name, 'BudgetTimeoutError');
    assert.equal(error.code, 'LG_BUDGET_TIMEOUT');
    assert.equal(error.budgetKey, 'registry');
    assert.deepEqual({ limit: error.limit, held: error.held, waiting: error.waiting }, { limit: 1, held: 1, waiting: 2 });
    assert.equal(error.heldHere, 1);
    assert.equal(error.message, 'budget "registry" exhausted: no permit within 1000 ms (key="registry" limit=1 heldHere=1 heldInFleet=1 waitingInFleet=2; fleet figures current)');
    assert.deepEqual(budget.stats().fleet, { held: 1, waiting: 1, ageMs: 0 }, 'an in-process budget is its own fleet');
    holder.release();
    await flush();
    assert.equal(second.state, 'granted', 'the waiter behind the timed-out one is served');
    assert.equal(budget.stats().timeouts, 1);
    assert.equal(clock.timers.total, 0, 'no deadline timer left');
  });

  it('an aborted waiter leaves the line at once; an already-aborted signal rejects before queueing', async () => {
    const { budget, clock } = setup(1);
    const holder = await budget.acquire();
    const controller = new AbortController();
    const aborted = watch(budget.acquire({ signal: controller.signal }));
    const next = watch(budget.acquire());
    controller.abort(new Error('client went away'));
    await flush();
    assert.equal(aborted.state, 'rejected');
    assert.ok(aborted.error instanceof BudgetAbortedError);
    assert.equal((aborted.error).code, 'LG_BUDGET_ABORTED');
    assert.equal(((aborted.error as Error).cause as Error).message, 'client went away');
    await assert.rejects(budget.acquire({ signal: AbortSignal.abort() }), { code: 'LG_BUDGET_ABORTED', message: /before it started/ });
    holder.release();
    await flush();
    assert.equal(next.state, 'granted');
    assert.equal(budget.stats().aborted, 2);
    next.permit?.release();
    assert.equal(clock.timers.total, 0);
  });

  it('close() rejects waiters, reports held permits lost, and refuses new acquires', async () => {
    const { budget, clock } = setup(1);
    const held = await budget.acquire();
    const waiter = watch(budget.acquire());
    let lostReason: unknown = null;
    held.lost.addEventListener('abort', () => { lostReason = held.lost.reason; });
    await budget.close();
    await flush();
    assert.ok(waiter.error instanceof BudgetClosedError);
    assert.equal((waiter.error).code, 'LG_BUDGET_CLOSED');
    assert.ok(lostReason instanceof PermitLostError);
    assert.equal((lostReason).code, 'LG_BUDGET_PERMIT_LOST');
    assert.equal((lostReason).permitId, held.id);
    held.release(); // harmless after close
    await assert.rejects(budget.acquire(), { code: 'LG_BUDGET_CLOSED' });
    assert.deepEqual({ closed: budget.stats().closed, lost: budget.stats().lost, held: budget.stats().held }, { closed: true, lost: 1, held: 0 });
    assert.equal(clock.timers.total, 0);
    await budget.close(); // idempotent
  });

  it('an acquire without a deadline waits as long as it takes', async () => {
    const { budget, clock } = setup(1);
    const holder = await budget.acquire();
    const waiter = watch(budget.acquire({ timeoutMs: Infinity }));
    await clock.advance(3_600_000);
    assert.equal(waiter.state, 'pending');
    assert.equal(clock.timers.total, 0);
    holder.release();
    await flush();
    assert.equal(waiter.state, 'granted');
  });

  it('validates options: required limit, unknown keys, types, and per-call options', async () => {
    assert.throws(() => new InProcessBudget({} as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'limit' && /required/.test(e.message));
    assert.throws(() => new InProcessBudget({ limit: 0 }), { code: 'LG_INVALID_OPTION', message: 'invalid option "limit": expected an integer >= 1, got number 0' });
    assert.throws(() => new InProcessBudget({ limit: 2.5 }), { message: /"limit": expected an integer >= 1, got number 2.5/ });
    assert.throws(() => new InProcessBudget({ limit: 1, limt: 2 } as never), { message: /unknown option "limt" for InProcessBudget; known options: acquireTimeoutMs, clock, key, limit/ });
    assert.throws(() => new InProcessBudget({ limit: 1, key: '' }), { message: /"key": expected a non-empty string/ });
    assert.throws(() => new InProcessBudget({ limit: 1, acquireTimeoutMs: -1 }), { message: /"acquireTimeoutMs": expected a number >= 1 \(or Infinity\), got number -1/ });
    assert.throws(() => new InProcessBudget({ limit: 1, clock: {} as never }), { message: /"clock": expected an object with now\(\)/ });
    assert.throws(() => new InProcessBudget(null as never), { message: /expected an object, got null/ });
    const budget = createBudget(1);
    await assert.rejects(budget.acquire({ timeoutMs: 0 }), { code: 'LG_INVALID_OPTION', message: /"timeoutMs": expected a number > 0/ });
    await assert.rejects(budget.acquire({ timoutMs: 5 } as never), { message: /unknown option "timoutMs" for budget acquire\(\)/ });
    assert.equal(budget.limit, 1);
    assert.match(budget.key, /^budget-\d+$/);
    assert.equal(createBudget({ limit: 3, key: 'x' }).key, 'x');
  });
});
