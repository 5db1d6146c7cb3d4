import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireTimeoutError, ErrorCodes, Pool, type CreateContext, type Factory } from '../../src/index.js';
import { InProcessBudget } from '../../src/budget/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';

interface Conn {
  readonly id: number;
}

/**
 * A factory whose creations first wait in a line (as for a budget permit or a connection slot) until
 * `admit()`, leaving it when the pool says the creation is unwanted; `honour: false` ignores that.
 */
class LineFactory {
  readonly line: { admit: () => void; context: CreateContext }[] = [];
  readonly unwantedReasons: unknown[] = [];
  created = 0;
  readonly #honour: boolean;

  constructor(honour = true) {
    this.#honour = honour;
  }

  async create(context: CreateContext): Promise<Conn> {
    await new Promise<void>((resolve, reject) => {
      const leave = (): void => {
        const at = this.line.indexOf(place);
        if (at >= 0) this.line.splice(at, 1);
      };
      const place = {
        admit: () => {
          leave();
          resolve();
        },
        context,
      };
      this.line.push(place);
      context.unwanted.addEventListener('abort', () => {
        this.unwantedReasons.push(context.unwanted.reason);
        if (!this.#honour) return;
        leave();
        reject(context.unwanted.reason as Error);
      }, { once: true });
    });
    return { id: ++this.created };
  }

  /** As the pool's `factory` option, which takes only the factory's own keys. */
  get hooks(): Factory<Conn> {
    return { create: (context) => this.create(context), destroy: () => undefined };
  }
}

describe('CreateContext.unwanted', () => {
  it('tells a creation waiting in a line that its waiter timed out; leaving it is no failure and starts no backoff', async () => {
    const clock = new FakeClock();
    const factory = new LineFactory();
    const pool = new Pool<Conn>({ factory: factory.hooks, clock, max: 2, acquireTimeoutMs: 50 });
    const errors: unknown[] = [];
    pool.on('createError', ({ error }) => { errors.push(error); });
    const waiting = assert.rejects(pool.acquire(), AcquireTimeoutError);
    await flush();
    assert.equal(factory.line.length, 1);
    await clock.advance(50);
    await waiting;
    await flush();
    assert.equal(factory.line.length, 0, 'the creation left the line');
    assert.equal((factory.unwantedReasons[0] as { code?: string }).code, ErrorCodes.CREATE_UNWANTED);
    assert.equal(pool.stats().creating, 0);
    assert.equal(pool.stats().createErrors, 0, 'not counted as a failure');
    assert.deepEqual(errors, []);
    // No backoff: the next acquire gets a creation at once, and it completes normally.
    const next = pool.acquire();
    await flush();
    assert.equal(factory.line.length, 1);
    factory.line[0]?.admit();
    (await next).release();
    await pool.close();
  });

  it('tells the creation started for a waiter that a released resource served instead', async () => {
    const clock = new FakeClock();
    const factory = new LineFactory();
    const pool = new Pool<Conn>({ factory: factory.hooks, clock, max: 2 });
    const first = pool.acquire();
    await flush();
    factory.line[0]?.admit();
    const lease = await first;
    const second = pool.acquire();
    await flush();
    assert.equal(factory.line.length, 1, 'a creation for the second waiter');
    lease.release();
    const served = await second;
    assert.equal(served.resource.id, 1, 'served by the released resource');
    await flush();
    assert.equal(factory.line.length, 0, 'so its creation left the line');
    assert.equal(pool.stats().size, 1);
    served.release();
    await pool.close();
  });

  it('never tells creations that min needs, and keeps the resource of a creation that ignores it', async () => {
    const clock = new FakeClock();
    const factory = new LineFactory(false);
    const pool = new Pool<Conn>({ factory: factory.hooks, clock, max: 3, min: 1, acquireTimeoutMs: 50 });
    await flush();
    assert.equal(factory.line.length, 1, 'the creation for min');
    // The first waiter counts on min's creation (elision); the second gets one of its own.
    const waiting = [assert.rejects(pool.acquire(), AcquireTimeoutError), assert.rejects(pool.acquire(), AcquireTimeoutError)];
    await flush();
    assert.equal(factory.line.length, 2);
    await clock.advance(50);
    await Promise.all(waiting);
    assert.equal(factory.unwantedReasons.length, 1, 'only the waiters\' creation, the youngest, is unwanted');
    assert.equal(factory.line[0]?.context.unwanted.aborted, false, 'min\'s creation is still wanted');
    // This factory ignores the signal: both resources arrive and are kept.
    for (const place of factory.line.splice(0)) place.admit();
    await flush();
    assert.equal(pool.stats().idle, 2);
    assert.equal(pool.stats().createErrors, 0);
    await pool.close();
  });

  it('regression: a creation that really fails after it became unwanted is a failure (counted, reported, backed off)', async () => {
    const clock = new FakeClock();
    // A connect that ignores `unwanted` (work under way) and is refused after 200 ms.
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const factory: Factory<Conn> = {
      create: () => new Promise<Conn>((_resolve, reject) => { clock.setTimeout(() => { reject(refused); }, 200, false); }),
      destroy: () => undefined,
    };
    const pool = new Pool<Conn>({ factory, clock, acquireTimeoutMs: 50 });
    const errors: unknown[] = [];
    pool.on('createError', ({ error }) => { errors.push(error); });
    const waiting = assert.rejects(pool.acquire(), AcquireTimeoutError);
    await clock.advance(50);
    await waiting;
    await clock.advance(150);
    await flush();
    assert.equal(pool.stats().createErrors, 1);
    assert.deepEqual(errors, [refused]);
    await pool.close();
  });

  it('a pool with a budget gives up its place in the budget\'s line when its waiter gives up', async () => {
    const clock = new FakeClock();
    const budget = new InProcessBudget({ key: 'remote', limit: 1, clock });
    let made = 0;
    const factory: Factory<Conn> = { create: () => Promise.resolve({ id: ++made }), destroy: () => undefined };
    const a = new Pool<Conn>({ factory, clock, budget, name: 'a' });
    const b = new Pool<Conn>({ factory, clock, budget, name: 'b', acquireTimeoutMs: 50 });
    const held = await a.acquire();
    const waiting = assert.rejects(b.acquire(), AcquireTimeoutError);
    await flush();
    assert.equal(budget.stats().waiting, 1, 'b waits for the only permit');
    await clock.advance(50);
    await waiting;
    await flush();
    assert.equal(budget.stats().waiting, 0, 'and leaves the line with its waiter, rather than hold a place nobody needs');
    held.release();
    await flush();
    assert.equal(made, 1, 'b never made the connection it no longer needed');
    assert.equal(b.stats().createErrors, 0);
    await a.close();
    await b.close();
    await budget.close();
  });
});
