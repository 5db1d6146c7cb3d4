/** Regression test of issue 13 §3: without a Keep-Alive hint, each origin learns its server's idle close from FINs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher } from '../../src/http/index.js';
import { agentGet, sleep } from './helpers.js';
import { startRawServer } from './raw-server.js';

describe('learned idle close', () => {
  for (const kind of ['agent', 'dispatcher'] as const) {
    it(`learned-idle-close-${kind}: after a FIN on a socket idle ~300 ms, sockets idle 260 ms are no longer reused, those idle 30 ms still are`, async () => {
      // Closes idle connections after 300 ms and never says so (no Keep-Alive header).
      const server = await startRawServer({ respond: () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', idleCloseMs: 300 });
      const agent = new LifeguardAgent();
      const d = new LifeguardDispatcher();
      const get = (path: string): Promise<string> => (kind === 'agent' ? agentGet(agent, `${server.url}${path}`) : request(`${server.url}${path}`, { dispatcher: d }).then((r) => r.body.text()));
      try {
        assert.equal(await get('/1'), 'ok');
        await sleep(30);
        assert.equal(await get('/2'), 'ok');
        assert.equal(server.accepted, 1, 'a socket idle 30 ms is reused');
        // The server closes the idle socket at 300 ms: the FIN teaches the origin its idle timeout.
        await sleep(500);
        assert.equal(await get('/3'), 'ok');
        assert.equal(server.accepted, 2);
        await sleep(260);
        // Still open at the server (260 < 300), but too close to its close to be reused safely.
        assert.equal(await get('/4'), 'ok');
        assert.equal(server.accepted, 3, 'a socket idle 260 ms was reused although the server closes idle ones at 300 ms');
        await sleep(30);
        assert.equal(await get('/5'), 'ok');
        assert.equal(server.accepted, 3, 'a socket idle 30 ms is still reused');
        assert.equal(server.requests, 5);
      } finally {
        await agent.close();
        await d.close();
        await server.close();
      }
      
    });
  }
});
