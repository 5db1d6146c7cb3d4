// The wait queue's priority lines: one alarm for every line's deadlines, service and scan order, compaction.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WaitQueue, type QueuedWaiter } from '../../src/internal/wait-queue.js';
import { FakeClock } from '../support/fake-clock.js';

interface W extends QueuedWaiter {
  readonly name: string;
}

function waiter(clock: FakeClock, name: string, timeoutMs: number): W {
  return { name, enqueuedAt: clock.now(), timeoutMs, signal: undefined, onAbort: undefined, settled: false };
}

/** A queue whose owner settles expired waiters and records them. */
function queueOf(clock: FakeClock, defaultTimeoutMs: number, lines: number): { queue: WaitQueue<W>; expired: string[] } {
  const expired: string[] = [];
  const queue: WaitQueue<W> = new WaitQueue<W>(clock, defaultTimeoutMs, {
    expired: (w) => {
      queue.settle(w);
      expired.push(w.name);
    },
    aborted: () => undefined,
    now: () => clock.now(),
  }, lines);
  return { queue, expired };
}

describe('WaitQueue with priority lines', () => {
  it('gives every line\'s deadlines one timer (the generic-pool compat layer used to arm one per priority)', async () => {
    const clock = new FakeClock();
    const { queue, expired } = queueOf(clock, 100, 3);
    queue.add(waiter(clock, 'low', 100), 2);
    await clock.advance(10);
    queue.add(waiter(clock, 'mid', 100), 1);
    await clock.advance(10);
    queue.add(waiter(clock, 'high', 100), 0);
    queue.add(waiter(clock, 'custom', 15), 2);
    assert.equal(clock.timers.total, 1, 'one alarm for every line');
    assert.equal(clock.timers.ref, 1, 'ref\'d: a caller waits for its timeout');
    await clock.advance(15);
    assert.deepEqual(expired, ['custom'], 'a per-call timeout in a lower line fires first');
    await clock.advance(100);
    assert.deepEqual(expired, ['custom', 'low', 'mid', 'high'], 'then by deadline, whatever the line');
    assert.equal(queue.pending, 0);
    assert.equal(clock.timers.total, 0, 'no timer once nobody waits');
  });

  it('serves the first line that has a waiter, oldest first within a line; scan visits in the same order', () => {
    const clock = new FakeClock();
    const { queue } = queueOf(clock, Infinity, 3);
    const a = waiter(clock, 'a', Infinity);
    const b = waiter(clock, 'b', Infinity);
    const c = waiter(clock, 'c', Infinity);
    const d = waiter(clock, 'd', Infinity);
    queue.add(a, 2);
    queue.add(b, 1);
    queue.add(c, 2);
    queue.add(d, 0);
    assert.equal(clock.timers.total, 0, 'no deadline, no timer');
    const scanned: string[] = [];
    queue.scan((w) => {
      scanned.push(w.name);
      return false;
    });
    assert.deepEqual(scanned, ['d', 'b', 'a', 'c']);
    const served: string[] = [];
    for (let w = queue.next(); w !== undefined; w = queue.next()) {
      served.push(w.name);
      queue.settle(w);
    }
    assert.deepEqual(served, ['d', 'b', 'a', 'c']);
    assert.equal(queue.pending, 0);
  });

  it('take() serves in next()\'s order and settles as settle() does, across lines and past settled waiters', async () => {
    const clock = new FakeClock();
    const { queue, expired } = queueOf(clock, 100, 3);
    const names = ['a2', 'b1', 'c2', 'd0', 'e0', 'f1'];
    const ws = names.map((name) => waiter(clock, name, name === 'c2' ? 50 : 100));
    ws.forEach((w, i) => {
      queue.add(w, Number(names[i]?.slice(1)));
    });
    queue.settle(ws[4] as W); // e0 gives up while d0 is ahead of it: stays in the line, settled
    queue.settle(ws[5] as W); // f1 gives up at the end of its line
    assert.equal(queue.pending, 4);
    const taken: string[] = [];
    for (let w = queue.take(); w !== undefined; w = queue.take()) {
      assert.equal(w.settled, true, 'taken waiters are settled');
      taken.push(w.name);
      if (taken.length === 2) {
        // c2 has the earliest deadline (a per-call timeout): once taken, the alarm must not fire for it.
        queue.add(waiter(clock, 'late0', 100), 0);
        taken.push((queue.take() as W).name);
      }
    }
    assert.deepEqual(taken, ['d0', 'b1', 'late0', 'a2', 'c2']);
    assert.equal(queue.pending, 0);
    assert.equal(clock.timers.total, 0, 'the alarm is dropped once nobody waits');
    await clock.advance(200);
    assert.deepEqual(expired, [], 'no taken waiter expires');
    // The pool's case: one line, every waiter with the default timeout (the line is the deadline order).
    const single = queueOf(clock, 100, 1);
    single.queue.add(waiter(clock, 'x', 100));
    single.queue.add(waiter(clock, 'y', 100));
    assert.equal(clock.timers.total, 1);
    assert.equal(single.queue.take()?.name, 'x');
    assert.equal(clock.timers.total, 1, 'y still waits');
    assert.equal(single.queue.take()?.name, 'y');
    assert.equal(clock.timers.total, 0, 'the alarm is dropped once nobody waits');
    assert.equal(single.queue.take(), undefined);
  });

  it('serves in arrival order across the renewals of the line\'s array (one every 4,096 adds), wrapped around', () => {
    const clock = new FakeClock();
    const { queue } = queueOf(clock, Infinity, 1);
    const served: string[] = [];
    let next = 0;
    // About 100 waiting at any time, so the ring wraps many times between renewals.
    for (let i = 0; i < 20_000; i++) {
      queue.add(waiter(clock, String(i), Infinity));
      if (i >= 100) served.push((queue.take() as W).name);
    }
    for (let w = queue.take(); w !== undefined; w = queue.take()) served.push(w.name);
    assert.equal(served.length, 20_000);
    for (const name of served) assert.equal(name, String(next++));
  });

  it('keeps the dead weight of lower lines bounded when their waiters give up out of order', () => {
    const clock = new FakeClock();
    const { queue } = queueOf(clock, Infinity, 2);
    // Reads of `settled` count the entries a scan walks past: live and dead ones still in a line.
    let reads = 0;
    const all: W[] = [];
    for (let i = 0; i < 5000; i++) {
      let settled = false;
      const w: W = {
        name: String(i), enqueuedAt: clock.now(), timeoutMs: Infinity, signal: undefined, onAbort: undefined,
        get settled() { reads++; return settled; },
        set settled(value) { settled = value; },
      };
      all.push(w);
      queue.add(w, 1);
    }
    // Every waiter but the first gives up, out of order (as withdrawn ones do); the first stays at the front.
    for (const w of all.slice(1).reverse()) queue.settle(w);
    assert.equal(queue.pending, 1);
    reads = 0;
    queue.scan(() => false);
    assert.ok(reads <= 1024 + 4, `a scan walked past ${String(reads)} entries for 1 waiter: dead ones were not compacted`);
    assert.equal(queue.next(), all[0]);
  });
});

describe('WaitQueue deadlines', () => {
  it('keeps deadlines in order when waiters with their own timeouts join and leave a line of default ones', async () => {
    const clock = new FakeClock();
    const { queue, expired } = queueOf(clock, 100, 1);
    queue.add(waiter(clock, 'd1', 100));
    await clock.advance(10);
    queue.add(waiter(clock, 'd2', 100));
    const forever = waiter(clock, 'forever', Infinity);
    queue.add(forever); // first in line among the living once d1 and d2 expire, yet never due
    queue.add(waiter(clock, 'short', 5));
    queue.add(waiter(clock, 'd3', 100));
    assert.equal(clock.timers.total, 1);
    await clock.advance(5);
    assert.deepEqual(expired, ['short']);
    await clock.advance(100);
    assert.deepEqual(expired, ['short', 'd1', 'd2', 'd3']);
    assert.equal(queue.next(), forever);
    assert.equal(clock.timers.total, 0, 'the waiter left has no deadline');
    queue.settle(forever);
    // Empty again: a new line of default waiters, then one with a longer timeout of its own.
    queue.add(waiter(clock, 'long', 500));
    queue.add(waiter(clock, 'd4', 100));
    await clock.advance(100);
    assert.deepEqual(expired.slice(4), ['d4']);
    await clock.advance(400);
    assert.deepEqual(expired.slice(4), ['d4', 'long']);
    assert.equal(queue.pending, 0);
    assert.equal(clock.timers.total, 0);
  });
});
