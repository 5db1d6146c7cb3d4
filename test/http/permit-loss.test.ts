/**
 * Issue 13 §1: a lost budget permit closes its connection after the current response, never mid-body
 * unless the permit may already be someone else's (its `goneAt` has passed). The budget here is a
 * `Budget` whose permits the test loses on demand, with the `goneAt` a RedisBudget gives a permit it could
 * not refresh (still counted in Redis for `lossMarginMs`) or one Redis reclaimed (`-Infinity`).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { BudgetPermit, type Budget, type BudgetStats, type BudgetUsage, type Permit } from '../../src/budget/budget.js';
import { LifeguardAgent, LifeguardDispatcher } from '../../src/http/index.js';
import { eventually, startServer, type TestServer } from './helpers.js';

/** Unlimited permits, each kept so that the test can lose it; `released` counts the holders' releases. */
class LosableBudget implements Budget {
  readonly key = 'losable';
  readonly limit = 100;
  readonly permits: BudgetPermit[] = [];
  released = 0;
  #seq = 0;

  acquire(): Promise<Permit> {
    const permit = new BudgetPermit(`losable:${++this.#seq}`, this.key, () => { this.released++; });
    this.permits.push(permit);
    return Promise.resolve(permit);
  }

  /** Loses every permit; `goneInMs` from now another process could hold it (-Infinity: already). */
  loseAll(goneInMs: number): void {
    for (const permit of this.permits) permit.lose('lost by the test', undefined, performance.now() + goneInMs, () => { this.released++; });
  }

  stats(): BudgetStats {
    return { key: this.key, limit: this.limit, held: this.permits.length, waiting: 0, acquired: this.permits.length, released: this.released, lost: 0, timeouts: 0, aborted: 0, unavailable: 0, closed: false, fleet: { held: 0, waiting: 0, ageMs: 0 } };
  }

  usage(): Promise<BudgetUsage> {
    return Promise.resolve({ key: this.key, limit: this.limit, held: this.permits.length, waiting: 0 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const CHUNKS = 6;
const CHUNK_GAP_MS = 60;

/** A body of CHUNKS chunks of 32 KiB, CHUNK_GAP_MS apart; `started` resolves when the first is sent. */
function slowBodyServer(): { handler: (req: http.IncomingMessage, res: http.ServerResponse) => void; started: Promise<void> } {
  let began!: () => void;
  const started = new Promise<void>((resolve) => { began = resolve; });
  return {
    started,
    handler: (_req, res) => {
      res.writeHead(200, { 'content-length': String(CHUNKS * 32 * 1024) });
      let sent = 0;
      const next = (): void => {
        res.write(Buffer.alloc(32 * 1024, 'x'));
        if (++sent === 1) began();
        if (sent === CHUNKS) res.end();
        else setTimeout(next, CHUNK_GAP_MS);
      };
      next();
    },
  };
}

/**
 * A dispatcher request whose body is under way when its permit is lost, `goneInMs` before another process
 * could hold it; `check` gets the body (still being read), when the loss was reported, the server and budget.
 */
async function lostMidBody(goneInMs: number, check: (body: Promise<ArrayBuffer>, lostAt: number, server: TestServer, budget: LosableBudget, d: LifeguardDispatcher) => Promise<void>): Promise<void> {
  const { handler, started } = slowBodyServer();
  const server = await startServer(handler);
  const budget = new LosableBudget();
  const d = new LifeguardDispatcher({ budget });
  try {
    const res = await request(server.url, { dispatcher: d });
    const body = res.body.arrayBuffer();
    await started;
    const lostAt = performance.now();
    budget.loseAll(goneInMs);
    await check(body, lostAt, server, budget, d);
  } finally {
    await d.close();
    await server.close();
  }
}

describe('a lost budget permit', () => {
  it('permit-lost-mid-body-dispatcher: the response running on its connection completes, then the connection closes and the permit goes back', async () => {
    // Still counted by the store for 5 s: time enough for this response (about 300 ms).
    await lostMidBody(5000, async (body, _lostAt, server, budget, d) => {
      assert.equal((await body).byteLength, CHUNKS * 32 * 1024, 'the body was cut although the permit was not gone yet');
      assert.ok(await eventually(() => server.open === 0), 'the connection outlived its lost permit after its response');
      assert.ok(await eventually(() => budget.released === 1), `the permit was not given back once the connection closed (${budget.released})`);
      // The next request gets a new connection (and a new permit).
      await (await request(server.url, { dispatcher: d })).body.arrayBuffer();
      assert.equal(budget.permits.length, 2);
    });
  });

  it('permit-lost-mid-body-agent: the same through the agent', async () => {
    const { handler, started } = slowBodyServer();
    const server = await startServer(handler);
    const budget = new LosableBudget();
    const agent = new LifeguardAgent({ budget });
    try {
      const done = new Promise<number>((resolve, reject) => {
        http.get(server.url, { agent }, (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
          res.on('end', () => { resolve(bytes); });
          res.on('error', reject);
          res.on('aborted', () => { reject(new Error('response aborted')); });
        }).on('error', reject);
      });
      await started;
      budget.loseAll(5000);
      assert.equal(await done, CHUNKS * 32 * 1024, 'the body was cut although the permit was not gone yet');
      assert.ok(await eventually(() => server.open === 0), 'the socket outlived its lost permit after its response');
      assert.ok(await eventually(() => budget.released === 1), `the permit was not given back once the socket closed (${budget.released})`);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('permit-gone-mid-body: a permit that may already be someone else\'s closes the connection at once, mid-body', async () => {
    await lostMidBody(-Infinity, async (body, _lostAt, server) => {
      await assert.rejects(body, 'the body went on on a connection whose permit was gone');
      assert.ok(await eventually(() => server.open === 0));
    });
  });

  it('permit-lost-cut-at-gone: a response still running when the lost permit is gone is cut then', async () => {
    await lostMidBody(100, async (body, lostAt, server) => {
      await assert.rejects(body);
      assert.ok(performance.now() - lostAt >= 90, 'cut before the permit was gone');
      assert.ok(await eventually(() => server.open === 0));
    });
  });
});
