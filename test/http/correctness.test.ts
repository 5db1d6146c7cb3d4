/** Regression tests of issue 13 §3: servers that close connections in ways the pool must see coming. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher } from '../../src/http/index.js';
import { startServer } from './helpers.js';
import { startRawServer } from './raw-server.js';

/** Sends a POST through node's client with `agent`; resolves with the status and body. */
function agentPost(agent: http.Agent, url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function settleAll<T>(promises: Promise<T>[]): Promise<{ ok: T[]; failed: string[] }> {
  const results = await Promise.allSettled(promises);
  const ok: T[] = [];
  const failed: string[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') ok.push(r.value);
    else failed.push(`${(r.reason as { code?: string }).code ?? ''} ${(r.reason as Error).message.split('\n')[0] ?? ''}`);
  }
  return { ok, failed };
}

describe('servers that close connections', () => {
  it('keep-alive-close token list: 50 POSTs to a server answering "Connection: keep-alive, close" all succeed (dispatcher)', async () => {
    const server = await startServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('connection', 'keep-alive, close');
        res.end('done');
      });
    });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 4 });
    try {
      const { ok, failed } = await settleAll(Array.from({ length: 50 }, async (_, i) => {
        const r = await request(`${server.url}/p${i}`, { method: 'POST', body: `n=${i}`, dispatcher: d });
        return `${r.statusCode} ${await r.body.text()}`;
      }));
      assert.deepEqual(failed, [], `${failed.length} of 50 POSTs failed`);
      assert.equal(ok.length, 50);
      assert.ok(ok.every((s) => s === '200 done'));
      assert.equal(server.requests, 50, 'each POST reached the server exactly once');
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('keep-alive-close token list: a connection the server closes is never reused (agent)', async () => {
    const server = await startServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('connection', 'keep-alive, close');
        res.end('done');
      });
    });
    const agent = new LifeguardAgent({ connectionsPerOrigin: 4 });
    try {
      const { ok, failed } = await settleAll(Array.from({ length: 50 }, (_, i) => agentPost(agent, `${server.url}/p${i}`, `n=${i}`)));
      assert.deepEqual(failed, []);
      assert.equal(ok.length, 50);
      assert.equal(server.requests, 50);
      assert.equal(server.accepted, 50, 'one connection per response: each was closed after its response');
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('http10-without-keep-alive: an HTTP/1.0 response without Connection: keep-alive closes its connection (dispatcher and agent)', async () => {
    // The server keeps the socket open: only the client can know it must not send a second request on it.
    const server = await startRawServer({ respond: () => 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok' });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 2 });
    const agent = new LifeguardAgent({ connectionsPerOrigin: 2 });
    try {
      const viaDispatcher = await settleAll(Array.from({ length: 20 }, async (_, i) => {
        const r = await request(`${server.url}/d${i}`, { method: 'POST', body: 'x', dispatcher: d });
        return await r.body.text();
      }));
      assert.deepEqual(viaDispatcher.failed, []);
      const acceptedByDispatcher = server.accepted;
      assert.equal(acceptedByDispatcher, 20, 'every request on a connection of its own');
      const viaAgent = await settleAll(Array.from({ length: 20 }, (_, i) => agentPost(agent, `${server.url}/a${i}`, 'x')));
      assert.deepEqual(viaAgent.failed, []);
      assert.equal(server.accepted - acceptedByDispatcher, 20);
      assert.equal(server.requests, 40);
    } finally {
      await d.close();
      await agent.close();
      await server.close();
    }
  });
});
