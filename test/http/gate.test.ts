import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionGate, type GatedConnection } from '../../src/http/gate.js';
import { backoffMs, isConnectionError, isIdempotent, isReplayable, parseRetryAfter, rawHeader } from '../../src/http/retry.js';
import { resolveRetryOptions } from '../../src/http/options.js';

class FakeConnection implements GatedConnection {
  evicted = false;
  constructor(readonly gate: ConnectionGate, readonly origin: string, public idle: boolean, readonly idleSince: number) {
    gate.track(this);
  }

  evict(): void {
    this.evicted = true;
    this.gate.untrack(this);
    this.gate.release(this.origin, this);
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ConnectionGate', () => {
  it('grants per origin and in total, first-in first-out, without head-of-line blocking across origins', async () => {
    const gate = new ConnectionGate(2, 3);
    await gate.acquire('a');
    await gate.acquire('a');
    const granted: string[] = [];
    void gate.acquire('a').then(() => granted.push('a3'));
    void gate.acquire('b').then(() => granted.push('b1'));
    void gate.acquire('b').then(() => granted.push('b2'));
    await flush();
    assert.deepEqual(granted, ['b1'], 'a is at its origin cap; b gets the last slot of the total');
    gate.release('a');
    await flush();
    assert.deepEqual(granted, ['b1', 'a3'], 'the oldest waiter that fits goes first');
    assert.equal(gate.total, 3);
    assert.equal(gate.waiting, 1);
  });

  it('nests: a child gate never exceeds its parent caps', async () => {
    const root = new ConnectionGate(10, 2);
    const child1 = new ConnectionGate(10, 10, root);
    const child2 = new ConnectionGate(10, 10, root);
    await child1.acquire('a');
    await child2.acquire('a');
    let third = false;
    void child1.acquire('a').then(() => { third = true; });
    await flush();
    assert.equal(third, false);
    assert.equal(root.total, 2);
    child2.release('a');
    await flush();
    assert.equal(third, true);
    assert.equal(child1.total, 2);
    assert.equal(root.total, 2);
  });

  it('evicts the longest-idle connection of another origin for a waiter blocked by the total cap', async () => {
    const gate = new ConnectionGate(5, 2);
    await gate.acquire('a');
    await gate.acquire('a');
    const older = new FakeConnection(gate, 'a', true, 1);
    const newer = new FakeConnection(gate, 'a', true, 2);
    await gate.acquire('b');
    assert.equal(older.evicted, true);
    assert.equal(newer.evicted, false);
  });

  it('never evicts a busy connection, and gives up waiting when the signal aborts', async () => {
    const gate = new ConnectionGate(5, 1);
    await gate.acquire('a');
    const busy = new FakeConnection(gate, 'a', false, 0);
    const controller = new AbortController();
    const waiting = gate.acquire('b', controller.signal);
    controller.abort(new Error('gave up'));
    await assert.rejects(waiting, /gave up/);
    assert.equal(busy.evicted, false);
    assert.equal(gate.waiting, 0);
  });

  it('rejects waiters on close', async () => {
    const gate = new ConnectionGate(1, 1);
    await gate.acquire('a');
    const waiting = gate.acquire('a');
    gate.close();
    await assert.rejects(waiting, (e: Error & { code?: string }) => e.code === 'LG_HTTP_CLOSED');
    await assert.rejects(gate.acquire('b'), (e: Error & { code?: string }) => e.code === 'LG_HTTP_CLOSED');
  });
});

describe('ConnectionGate.handOver (fair-shared-cap-reconnects: a slot moves between scopes with its open connection)', () => {
  it('hands the connection and its slot to the oldest waiter of another gate for the same origin, moving the counts', async () => {
    const root = new ConnectionGate(10, 1);
    const a = new ConnectionGate(10, 10, root);
    const b = new ConnectionGate(10, 10, root);
    await a.acquire('o');
    const conn = new FakeConnection(a, 'o', false, 0);
    const adopted: GatedConnection[] = [];
    let granted = false;
    void b.acquire('o', undefined, 5, (c) => { adopted.push(c); return () => undefined; }).then(() => { granted = true; });
    await flush();
    assert.equal(a.handOver(conn, 5), false, 'the waiter is not older than the next request of the pool that holds it');
    assert.deepEqual(adopted, []);
    assert.equal(a.handOver(conn, 6), true);
    assert.deepEqual(adopted, [conn]);
    assert.deepEqual([a.total, b.total, root.total, root.waiting + b.waiting], [0, 1, 1, 0]);
    assert.deepEqual([a.snapshot().busy, b.snapshot().busy], [0, 1], 'the gates track it where its slot is');
    await flush();
    assert.equal(granted, true);
    b.release('o', conn);
    assert.equal(root.total, 0);
  });

  it('keeps it for an older waiter of another origin (which needs the slot closed), a waiter that refuses it, or a waiter that cannot take connections', async () => {
    const root = new ConnectionGate(10, 1);
    const a = new ConnectionGate(10, 10, root);
    const b = new ConnectionGate(10, 10, root);
    await a.acquire('o');
    const conn = new FakeConnection(a, 'o', false, 0);
    const other = new AbortController();
    void b.acquire('p', other.signal, 1).catch(() => undefined);
    void b.acquire('o', undefined, 2, () => () => undefined);
    await flush();
    assert.equal(a.handOver(conn, Infinity), false, 'the oldest waiter is for another origin');
    assert.equal(a.olderWaiterElsewhere('o', Infinity), true, 'that one gets the slot once the connection is closed');
    other.abort(new Error('gone'));
    const refusing = new ConnectionGate(10, 10, root);
    void refusing.acquire('o', undefined, 0, () => null);
    await flush();
    assert.equal(a.handOver(conn, Infinity), false, 'the oldest refuses it');
    assert.deepEqual([a.total, root.total], [1, 1]);
    const root2 = new ConnectionGate(10, 1);
    const c = new ConnectionGate(10, 10, root2);
    const d = new ConnectionGate(10, 10, root2);
    await c.acquire('o');
    const conn2 = new FakeConnection(c, 'o', false, 0);
    void d.acquire('o', undefined, 0);
    await flush();
    assert.equal(c.handOver(conn2, Infinity), false, 'a waiter without adopt (an agent) only takes a slot');
    assert.equal(c.total, 1);
  });
});

describe('retry policy helpers', () => {
  it('backs off exponentially with full jitter under maxDelayMs', () => {
    const policy = resolveRetryOptions({ initialDelayMs: 100, maxDelayMs: 1000 });
    assert.ok(policy !== null);
    assert.equal(backoffMs(policy, 1, () => 0.999), 100);
    assert.equal(backoffMs(policy, 3, () => 0.999), 400);
    assert.equal(backoffMs(policy, 10, () => 0.999), 999);
    assert.equal(backoffMs(policy, 10, () => 0), 0);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(parseRetryAfter('soon'), null);
  });

  it('knows idempotent methods, replayable bodies and connection errors', () => {
    assert.ok(isIdempotent('get') && isIdempotent('PUT') && !isIdempotent('POST') && !isIdempotent('PATCH'));
    assert.ok(isReplayable('x') && isReplayable(Buffer.from('x')) && isReplayable(null) && isReplayable(undefined));
    assert.ok(!isReplayable((function* body() { yield 'x'; })()));
    assert.ok(isConnectionError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })));
    assert.ok(isConnectionError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }) })));
    assert.ok(!isConnectionError(new Error('bad request')));
    assert.equal(rawHeader([Buffer.from('Retry-After'), Buffer.from('2')], 'retry-after'), '2');
  });
});
