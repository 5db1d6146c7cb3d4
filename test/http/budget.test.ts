/** Issue 13 §1: the `budget` option of the dispatcher and its agents (in-process budgets; the fleet is in budget-fleet.test.ts). */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createBudget } from '../../src/budget/index.js';
import { HttpErrorCodes, LifeguardAgent, LifeguardDispatcher } from '../../src/http/index.js';
import { agentGet, eventually, peakDuring, startServer } from './helpers.js';

const slow = (ms: number) => (_req: http.IncomingMessage, res: http.ServerResponse): void => {
  setTimeout(() => { res.end('ok'); }, ms);
};

describe('HTTP budget option', () => {
  it('dispatcher-takes-budget: new LifeguardDispatcher({ budget }) opens no more connections than the budget allows, and gives every permit back on close', async () => {
    const server = await startServer(slow(20));
    const budget = createBudget(2);
    const d = new LifeguardDispatcher({ budget, connectionsPerOrigin: 10 });
    try {
      const { result, peak } = await peakDuring(() => server.open, Promise.all(Array.from({ length: 30 }, async () => {
        const r = await request(`${server.url}/`, { dispatcher: d });
        return await r.body.text();
      })));
      assert.ok(result.every((t) => t === 'ok'));
      assert.ok(peak <= 2 && server.peak <= 2, `the server saw ${Math.max(peak, server.peak)} connections with a budget of 2`);
      assert.equal(budget.stats().held, 2, 'idle keep-alive connections keep their permits');
      await d.close();
      assert.equal(budget.stats().held, 0, 'permits still held after close()');
    } finally {
      await d.close();
      await budget.close();
      await server.close();
    }
  });

  it('per-origin budgets (a Map keyed by origin, or a function) apply to their origin only; the agents of a dispatcher and a standalone agent obey them', async () => {
    const a = await startServer(slow(20));
    const b = await startServer(slow(20));
    const budgetA = createBudget(1);
    const d = new LifeguardDispatcher({ budget: new Map([[`${a.url}/`, budgetA]]), connectionsPerOrigin: 4 });
    const agent = d.createAgent();
    const budgetB = createBudget(2);
    const standalone = new LifeguardAgent({ budget: (origin: string) => (origin === b.url ? budgetB : undefined), connectionsPerOrigin: 4 });
    try {
      await Promise.all([
        ...Array.from({ length: 8 }, () => request(a.url, { dispatcher: d }).then((r) => r.body.text())),
        ...Array.from({ length: 8 }, () => agentGet(agent, `${a.url}/x`)),
        ...Array.from({ length: 8 }, () => request(b.url, { dispatcher: d }).then((r) => r.body.text())),
      ]);
      assert.equal(a.peak, 1, 'origin A is capped by its budget of 1, dispatcher and agent together');
      assert.ok(b.peak > 1, 'origin B has no budget in the map');
      b.resetPeak();
      await d.close();
      await Promise.all(Array.from({ length: 8 }, () => agentGet(standalone, `${b.url}/y`)));
      assert.ok(b.peak <= 2, `standalone agent: ${b.peak} connections with a budget of 2`);
    } finally {
      await d.close();
      await standalone.close();
      await budgetA.close();
      await budgetB.close();
      await a.close();
      await b.close();
    }
  });

  it('a wait for a permit counts against the request deadline, and the timeout says the budget is why', async () => {
    const server = await startServer(slow(1500));
    const budget = createBudget({ limit: 1, key: 'registry' });
    const d = new LifeguardDispatcher({ budget, retry: { deadlineMs: 300 } });
    try {
      const first = request(server.url, { dispatcher: d });
      const error = await request(server.url, { dispatcher: d }).then(() => null, (e: unknown) => e as Error & { code?: string });
      assert.equal(error?.code, HttpErrorCodes.QUEUE_TIMEOUT, error?.message);
      assert.match(error.message, /budget "registry": this process holds 1 of limit=1 permits/);
      assert.equal(await (await first).body.text(), 'ok');
    } finally {
      await d.close();
      await budget.close();
      await server.close();
    }
  });

  it('a lost permit closes its connection', async () => {
    const server = await startServer(slow(0));
    const budget = createBudget(1);
    const d = new LifeguardDispatcher({ budget });
    try {
      await (await request(server.url, { dispatcher: d })).body.text();
      assert.equal(server.open, 1);
      // Closing a budget reports every permit it granted lost.
      await budget.close();
      assert.ok(await eventually(() => server.open === 0), 'the connection outlived its permit');
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('rejects a budget option that is not a budget, naming the option', () => {
    assert.throws(() => new LifeguardDispatcher({ budget: 8 as never }), (e: Error & { code?: string }) => e.code === 'LG_INVALID_OPTION' && /"budget"/.test(e.message) && /got number 8/.test(e.message));
    assert.throws(() => new LifeguardDispatcher({ budget: { 'http://a': {} } as never }), /budget\["http:\/\/a"\]/);
    assert.throws(() => new LifeguardAgent({ budget: { 'ftp://a': createBudget(1) } }), /http: or https: origins/);
  });
});
