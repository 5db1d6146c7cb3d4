/** Regression tests of fair-shared-cap-reconnects (issue 13 §3): a slot that moves between scopes takes its open connection along, and only a connection fit for reuse moves. */
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import type http from 'node:http';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createBudget } from '../../src/budget/index.js';
import { LifeguardDispatcher, type HttpPoolOptions } from '../../src/http/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { eventually, handleSnapshot, peakDuring, startServer, type TestServer } from './helpers.js';

interface HeldServer {
  readonly server: TestServer;
  readonly url: string;
  /** Lets the oldest held response go (waits for it to arrive). */
  answer(): Promise<void>;
}

/**
 * A server that holds each response until the test lets it go, answering with the client's port (so the
 * test sees which connection served it) and `headers(path)`.
 */
async function heldServer(headers: (path: string) => http.OutgoingHttpHeaders = () => ({})): Promise<HeldServer> {
  const held: (() => void)[] = [];
  const server = await startServer((req, res) => {
    held.push(() => {
      res.writeHead(200, headers(req.url ?? ''));
      res.end(String(req.socket.remotePort));
    });
  });
  return {
    server,
    url: server.url,
    async answer() {
      assert.ok(await eventually(() => held.length > 0), 'a request reached the server');
      (held.shift() as () => void)();
    },
  };
}

/** GET through `dispatcher`, resolving with the body (the port the server saw). */
async function get(url: string, dispatcher: LifeguardDispatcher): Promise<string> {
  const r = await request(url, { dispatcher });
  return r.body.text();
}

/**
 * Scope A's request is running and holds the only slot; scope B's request then waits for it at the gate.
 * Returns A's outcome, and B's as `b(scope)` runs it.
 */
async function contend<B>(d: LifeguardDispatcher, s: HeldServer, b: (scope: LifeguardDispatcher, a: Promise<string>) => Promise<B>, bScope: HttpPoolOptions = {}): Promise<{ a: Promise<string>; b: Promise<B> }> {
  const a = d.withScope((scope) => get(`${s.url}/a`, scope));
  assert.ok(await eventually(() => s.server.requests === 1));
  let waiting: LifeguardDispatcher | null = null;
  const bDone = d.withScope((scope) => {
    waiting = scope;
    return b(scope, a);
  }, bScope);
  // B's pool is creating: its create waits at the gate for A's slot.
  assert.ok(await eventually(() => (waiting?.stats().origins[0]?.creating ?? 0) === 1), 'scope B waits for a slot');
  return { a, b: bDone };
}

/** A's request is answered, then B's: B got a connection of its own (A's was not handed over), and the server saw two. */
async function assertNewConnection(s: HeldServer, a: Promise<string>, b: Promise<string>): Promise<void> {
  await s.answer();
  const portA = await a;
  await s.answer();
  assert.notEqual(await b, portA);
  assert.equal(s.server.accepted, 2);
}

/**
 * The destroy reasons the pools publish until `stop()`, but for `closed` (a scope ending). A handover must
 * show as `moved` in the pool the connection left, never as `error` (handover-counts-moved: it once added
 * one to destroyed{reason="error"} per handover).
 */
function destroyReasons(): { readonly seen: string[]; stop(): void } {
  const seen: string[] = [];
  const onDestroy = (message: unknown): void => {
    const { reason } = message as { reason: string };
    if (reason !== 'closed') seen.push(reason);
  };
  dc.subscribe('lifeguard:pool:destroy', onDestroy);
  return { seen, stop: () => { dc.unsubscribe('lifeguard:pool:destroy', onDestroy); } };
}

describe('handover of open connections between scopes', () => {
  it('handover-moves-open-connection: the connection itself moves to the older waiter of another scope, and outlives the scope it came from; the pool it left counts it as moved (handover-counts-moved)', async () => {
    const s = await heldServer();
    const d = new LifeguardDispatcher({ maxConnections: 1, connectionsPerOrigin: 1 });
    const handles = handleSnapshot();
    const reasons = destroyReasons();
    try {
      const { a, b } = await contend(d, s, async (scope, aDone) => {
        const first = await get(`${s.url}/b1`, scope);
        // Scope A ends (and closes what it owns) before B's next request.
        await aDone;
        const second = await get(`${s.url}/b2`, scope);
        return [first, second];
      });
      await s.answer();
      const portA = await a;
      await s.answer();
      await s.answer();
      assert.deepEqual(await b, [portA, portA], 'both of B\'s requests ran on A\'s connection');
      assert.deepEqual(reasons.seen, ['moved'], 'the lent connection left A\'s pool as moved, not as broken');
      assert.equal(s.server.accepted, 1, 'one connect for three requests of two scopes');
      assert.equal(d.stats().connections, 0, 'scope B closed it when it ended');
      assert.ok(await eventually(() => s.server.open === 0));
    } finally {
      reasons.stop();
      await d.close();
      await s.server.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('handover-moves-idle-connection: a connection idle in a scope that is still open moves to another scope\'s request instead of being closed for a new connect; the pool it left counts it as moved (handover-counts-moved)', async () => {
    const s = await heldServer();
    const d = new LifeguardDispatcher({ maxConnections: 1, connectionsPerOrigin: 1 });
    const reasons = destroyReasons();
    let endA!: () => void;
    const aMayEnd = new Promise<void>((resolve) => { endA = resolve; });
    try {
      let portA = '';
      const a = d.withScope(async (scope) => {
        const pending = get(`${s.url}/a`, scope);
        await s.answer();
        portA = await pending;
        // Scope A stays open, its connection idle in its pool.
        await aMayEnd;
      });
      assert.ok(await eventually(() => portA !== ''));
      const b = d.withScope(async (scope) => {
        const pending = get(`${s.url}/b`, scope);
        await s.answer();
        return pending;
      });
      assert.equal(await b, portA, 'B\'s request ran on the connection idle in scope A');
      assert.deepEqual(reasons.seen, ['moved'], 'the idle connection left A\'s pool as moved, not as broken');
      assert.equal(s.server.accepted, 1);
      endA();
      await a;
    } finally {
      reasons.stop();
      endA();
      await d.close();
      await s.server.close();
    }
  });

  it('handover-same-client-options: a scope whose connections are made differently (its own headersTimeoutMs) never gets another scope\'s connection', async () => {
    const s = await heldServer();
    const d = new LifeguardDispatcher({ maxConnections: 1, connectionsPerOrigin: 1 });
    try {
      const { a, b } = await contend(d, s, (scope) => get(`${s.url}/b`, scope), { headersTimeoutMs: 12_345 });
      await assertNewConnection(s, a, b);
    } finally {
      await d.close();
      await s.server.close();
    }
  });

  for (const [name, headers] of [
    ['Connection: close', { connection: 'close' }],
    ['Connection: keep-alive, close', { connection: 'keep-alive, close' }],
    ['Keep-Alive: timeout=1 (within the safety margin)', { 'keep-alive': 'timeout=1' }],
  ] as const) {
    it(`handover-never-closing: a connection the server closes (${name}) is never handed over; the waiter gets a new one and never fails for it`, async () => {
      const s = await heldServer((path) => (path === '/a' ? headers : {}));
      const d = new LifeguardDispatcher({ maxConnections: 1, connectionsPerOrigin: 1 });
      try {
        const { a, b } = await contend(d, s, (scope) => get(`${s.url}/b`, scope));
        await assertNewConnection(s, a, b);
      } finally {
        await d.close();
        await s.server.close();
      }
    });
  }

  it('handover-never-expired: a connection at the end of its maxLifetimeMs is not handed over (injected clock)', async () => {
    const s = await heldServer();
    const clock = new FakeClock();
    const d = new LifeguardDispatcher({ clock, maxConnections: 1, connectionsPerOrigin: 1, maxLifetimeMs: 10_000, maxLifetimeJitterMs: 1 });
    try {
      const { a, b } = await contend(d, s, (scope) => get(`${s.url}/b`, scope));
      await clock.advance(10_500);
      await assertNewConnection(s, a, b);
    } finally {
      await d.close();
      await s.server.close();
    }
  });

  it('handover-keeps-lifetime: a connection handed over still ends at its own maxLifetimeMs, not one lifetime after the move (injected clock)', async () => {
    const s = await heldServer();
    const clock = new FakeClock();
    const d = new LifeguardDispatcher({ clock, maxConnections: 1, connectionsPerOrigin: 1, maxLifetimeMs: 10_000, maxLifetimeJitterMs: 1 });
    try {
      const { a, b } = await contend(d, s, async (scope) => {
        const first = await get(`${s.url}/b1`, scope);
        // 11 s after the connect, 5 s after the move.
        await clock.advance(5_000);
        const second = get(`${s.url}/b2`, scope);
        await s.answer();
        return [first, await second];
      });
      await clock.advance(6_000);
      await s.answer();
      const portA = await a;
      await s.answer();
      const [first, second] = await b;
      assert.equal(first, portA, 'handed over with 4 s of life left');
      assert.notEqual(second, portA, 'closed at the end of its life in the pool it moved to');
      assert.equal(s.server.accepted, 2);
    } finally {
      await d.close();
      await s.server.close();
    }
  });

  it('handover-keeps-budget: with a budget, 10 scopes x 2 loops x 5 requests hand connections over and never hold more permits than the limit; all are given back', async () => {
    const server = await startServer((_req, res) => { setTimeout(() => { res.end('ok'); }, 2); });
    const budget = createBudget(6);
    const d = new LifeguardDispatcher({ maxConnections: 4, connectionsPerOrigin: 4, budget });
    try {
      const work = Promise.all(Array.from({ length: 10 }, (_, n) => d.withScope((scope) => Promise.all([0, 1].map(async (l) => {
        for (let i = 0; i < 5; i++) assert.equal(await get(`${server.url}/s${n}/${l}/${i}`, scope), 'ok');
      })))));
      const { peak } = await peakDuring(() => budget.stats().held, work);
      assert.ok(peak <= 6, `held ${peak} permits of 6`);
      assert.ok(server.accepted <= 12, `${server.accepted} connects for 100 requests (a connect per handover between scopes)`);
      assert.equal(d.stats().connections, 0);
      assert.ok(await eventually(() => budget.stats().held === 0), `every permit given back (${budget.stats().held} held)`);
    } finally {
      await d.close();
      await server.close();
    }
  });
});
