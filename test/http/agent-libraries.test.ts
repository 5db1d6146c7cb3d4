import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { HttpRequest } from '@smithy/protocol-http';
import axios from 'axios';
import got from 'got';
import { LifeguardDispatcher } from '../../src/http/index.js';
import { handleSnapshot, startServer } from './helpers.js';

// The libraries the agent is for, used the way their docs say, against a server that counts connections:
// every request goes through Lifeguard's pool (one connection, reused), under the dispatcher's caps.

async function text(stream: Readable): Promise<string> {
  let body = '';
  for await (const chunk of stream) body += String(chunk);
  return body;
}

describe('the agent with the libraries that take one', () => {
  it('axios (httpAgent), got (agent.http) and the AWS SDK\'s NodeHttpHandler (httpAgent) share one pooled, reused connection', async () => {
    const handles = handleSnapshot();
    const server = await startServer((req, res) => { res.end(`hello ${req.url ?? ''}`); });
    const dispatcher = new LifeguardDispatcher({ connectionsPerOrigin: 1 });
    const agent = dispatcher.createAgent();
    try {
      for (let i = 0; i < 3; i++) {
        const a = await axios.get<string>(`${server.url}/axios`, { httpAgent: agent, responseType: 'text' });
        assert.equal(a.data, 'hello /axios');
        assert.equal(await got(`${server.url}/got`, { agent: { http: agent }, retry: { limit: 0 } }).text(), 'hello /got');
        const handler = new NodeHttpHandler({ httpAgent: agent });
        const { port } = new URL(server.url);
        const { response } = await handler.handle(new HttpRequest({ protocol: 'http:', hostname: '127.0.0.1', port: Number(port), method: 'GET', path: '/aws', headers: { host: `127.0.0.1:${port}` } }));
        assert.equal(response.statusCode, 200);
        assert.equal(await text(response.body as Readable), 'hello /aws');
      }
      assert.equal(server.requests, 9);
      assert.equal(server.accepted, 1, 'nine requests from three libraries over one pooled connection');
      const stats = agent.stats();
      assert.equal(stats.requests, 9);
      assert.equal(stats.pendingBodies, 0, 'every body was consumed and its socket returned');
    } finally {
      await dispatcher.close();
      await server.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('a library\'s request waits in Lifeguard\'s queue at the cap, and times out with LG_HTTP_QUEUE_TIMEOUT', async () => {
    const server = await startServer((req, res) => { if (req.url === '/slow') setTimeout(() => res.end('slow'), 400); else res.end('fast'); });
    const dispatcher = new LifeguardDispatcher({ connectionsPerOrigin: 1, acquireTimeoutMs: 100 });
    const agent = dispatcher.createAgent();
    try {
      const slow = axios.get<string>(`${server.url}/slow`, { httpAgent: agent, responseType: 'text' });
      await assert.rejects(got(`${server.url}/fast`, { agent: { http: agent }, retry: { limit: 0 } }).text(), (error: Error & { code?: string }) => error.code === 'LG_HTTP_QUEUE_TIMEOUT');
      assert.equal((await slow).data, 'slow');
      assert.equal(server.accepted, 1, 'the cap held');
    } finally {
      await dispatcher.close();
      await server.close();
    }
  });
});
