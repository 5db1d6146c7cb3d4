import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { LifeguardDispatcher } from '../../src/http/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { eventually, handleSnapshot, ok, startServer } from './helpers.js';

describe('faults injected by the proxy', () => {
  it('a reset in the middle of a response fails that request only; its connection is destroyed and the pool recovers', async () => {
    const handles = handleSnapshot();
    const server = await startServer(ok('y'.repeat(200_000)));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: (n) => (n === 1 ? { resetAfterResponseBytes: 50_000 } : {}) });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1 });
    try {
      const first = await request(proxy.url, { dispatcher: d });
      await assert.rejects(first.body.text(), (e: Error & { code?: string }) => e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET');
      const second = await request(proxy.url, { dispatcher: d });
      assert.equal((await second.body.text()).length, 200_000);
      assert.equal(proxy.accepted, 2);
      assert.equal(d.pools()[0]?.stats().destroyed.error, 1);
      assert.equal(d.stats().retries, 0, 'a response already under way is never retried');
    } finally {
      await d.close();
      await proxy.close();
      await server.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('a server that accepts and never answers fails the request at headersTimeoutMs and frees the connection', async () => {
    const server = await startServer(ok());
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: (n) => (n === 1 ? { hang: true } : {}) });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1, headersTimeoutMs: 200, retry: false });
    try {
      await assert.rejects(request(proxy.url, { dispatcher: d }), (e: Error & { code?: string }) => e.code === 'UND_ERR_HEADERS_TIMEOUT');
      assert.ok(await eventually(() => d.stats().connections === 0));
      assert.equal((await (await request(proxy.url, { dispatcher: d })).body.text()).length, 1024);
    } finally {
      await d.close();
      await proxy.close();
      await server.close();
    }
  });

  it('latency slows requests down but loses nothing', async () => {
    const server = await startServer(ok('z'));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: { latencyMs: 20 } });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 2 });
    try {
      const started = Date.now();
      const bodies = await Promise.all(Array.from({ length: 6 }, () => request(proxy.url, { dispatcher: d }).then((r) => r.body.text())));
      assert.deepEqual(bodies, Array.from({ length: 6 }, () => 'z'));
      assert.ok(Date.now() - started >= 40, 'each request crossed the proxy twice with 20 ms each way');
      assert.equal(proxy.peak, 2);
    } finally {
      await d.close();
      await proxy.close();
      await server.close();
    }
  });
});
