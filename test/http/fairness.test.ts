/** Regression test of issue 13 §3: requests of many scopes sharing a total cap are served in arrival order. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { LifeguardDispatcher } from '../../src/http/index.js';
import { agentGet, startServer } from './helpers.js';

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

describe('fairness under a shared total cap', () => {
  it('fair-shared-cap: 50 scopes x 2 loops x 10 requests sharing maxConnections=10 are served in arrival order (worst wait within 4x the median)', async (t) => {
    const server = await startServer((_req, res) => { setTimeout(() => { res.end('ok'); }, 3); });
    const d = new LifeguardDispatcher({ maxConnections: 10, connectionsPerOrigin: 10 });
    const waits: number[] = [];
    try {
      await Promise.all(Array.from({ length: 50 }, (_, s) => d.withScope(async (scope) => {
        // Two loops per scope, like jobs: each sends its next request when the previous one is done.
        await Promise.all([0, 1].map(async (loop) => {
          for (let i = 0; i < 10; i++) {
            const started = performance.now();
            const r = await request(`${server.url}/s${s}/${loop}/${i}`, { dispatcher: scope });
            waits.push(performance.now() - started);
            await r.body.text();
          }
        }));
      })));
      waits.sort((a, b) => a - b);
      const median = quantile(waits, 0.5);
      const worst = waits[waits.length - 1] ?? NaN;
      t.diagnostic(`1000 requests: median ${Math.round(median)} ms, p99 ${Math.round(quantile(waits, 0.99))} ms, worst ${Math.round(worst)} ms`);
      // Served in arrival order, every request waits about as long as the others (100 in line for 10 connections); a starved one waits many times the median.
      assert.ok(worst <= 4 * median, `worst wait ${Math.round(worst)} ms against a median of ${Math.round(median)} ms`);
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('fair-shared-cap-agent: an agent of the dispatcher, 10 origins x 2 loops x 10 requests sharing maxConnections=4, is served in arrival order (worst wait within 4x the median)', async (t) => {
    // The agent's sockets take their slots from the dispatcher's gate: a busy origin must not keep its
    // sockets for its own queue while older requests to other origins wait for a slot.
    const servers = await Promise.all(Array.from({ length: 10 }, () => startServer((_req, res) => { setTimeout(() => { res.end('ok'); }, 3); })));
    const d = new LifeguardDispatcher({ maxConnections: 4, connectionsPerOrigin: 4 });
    const agent = d.createAgent();
    const waits: number[] = [];
    try {
      await Promise.all(servers.map((server, s) => Promise.all([0, 1].map(async (loop) => {
        for (let i = 0; i < 10; i++) {
          const started = performance.now();
          assert.equal(await agentGet(agent, `${server.url}/s${s}/${loop}/${i}`), 'ok');
          waits.push(performance.now() - started);
        }
      }))));
      waits.sort((a, b) => a - b);
      const median = quantile(waits, 0.5);
      const worst = waits[waits.length - 1] ?? NaN;
      t.diagnostic(`200 agent requests over 10 origins: median ${Math.round(median)} ms, p99 ${Math.round(quantile(waits, 0.99))} ms, worst ${Math.round(worst)} ms`);
      assert.ok(worst <= 4 * median, `worst wait ${Math.round(worst)} ms against a median of ${Math.round(median)} ms`);
      assert.ok(d.stats().connections <= 4);
    } finally {
      await d.close();
      await Promise.all(servers.map((server) => server.close()));
    }
  });
});
