/** Regression tests of issue 13 §3: the body-leak clock runs from the caller's last read, not from the headers. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { fetch, request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher, type BodyLeakReport } from '../../src/http/index.js';
import { eventually, startServer, type TestServer } from './helpers.js';

const CHUNK = Buffer.alloc(16 * 1024, 'a');
const LEAK_AFTER_MS = 400;

/** `/trickle`: 30 chunks of 16 KiB, one every 50 ms (1.5 s in all, each gap far below the leak threshold); `/blob`: 2 MiB at once. */
async function trickleServer(): Promise<TestServer> {
  return startServer((req, res) => {
    if (req.url === '/blob') {
      res.end(Buffer.alloc(2 * 1024 * 1024, 'b'));
      return;
    }
    let sent = 0;
    const timer = setInterval(() => {
      if (res.destroyed) {
        clearInterval(timer);
        return;
      }
      res.write(CHUNK);
      if (++sent === 30) {
        clearInterval(timer);
        res.end();
      }
    }, 50);
  });
}

describe('body-leak clock', () => {
  it('slow-steady-download-not-a-leak: a body read steadily for longer than bodyLeakWarnAfterMs raises nothing (for await, arrayBuffer()); an untouched one does (dispatcher)', async () => {
    const server = await trickleServer();
    const d = new LifeguardDispatcher({ bodyLeakWarnAfterMs: LEAK_AFTER_MS });
    const leaks: BodyLeakReport[] = [];
    d.on('leak', (report) => { leaks.push(report); });
    try {
      const r = await request(`${server.url}/trickle`, { dispatcher: d });
      let bytes = 0;
      for await (const chunk of r.body) bytes += (chunk as Buffer).length;
      assert.equal(bytes, 30 * CHUNK.length);
      const res = await fetch(`${server.url}/trickle`, { dispatcher: d });
      assert.equal((await res.arrayBuffer()).byteLength, 30 * CHUNK.length);
      assert.deepEqual(leaks.map((l) => l.message), [], 'a body being read was reported as a leak');

      const untouched = await request(`${server.url}/blob`, { dispatcher: d });
      assert.ok(await eventually(() => leaks.length > 0, 5000), 'an untouched body was never reported');
      assert.equal(leaks[0]?.path, '/blob');
      assert.ok((leaks[0]?.heldMs ?? 0) >= LEAK_AFTER_MS);
      untouched.body.destroy();
    } finally {
      await d.destroy();
      await server.close();
    }
  });

  it('slow-steady-download-not-a-leak: data events read steadily raise nothing; an untouched body does (agent)', async () => {
    const server = await trickleServer();
    const agent = new LifeguardAgent({ bodyLeakWarnAfterMs: LEAK_AFTER_MS });
    const leaks: BodyLeakReport[] = [];
    agent.on('leak', (report: BodyLeakReport) => { leaks.push(report); });
    const get = (path: string): Promise<http.IncomingMessage> => new Promise((resolve, reject) => {
      http.get(`${server.url}${path}`, { agent }, resolve).on('error', reject);
    });
    try {
      const res = await get('/trickle');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
      await new Promise((resolve) => res.on('end', resolve));
      assert.equal(bytes, 30 * CHUNK.length);
      assert.deepEqual(leaks.map((l) => l.message), []);

      const untouched = await get('/blob');
      assert.ok(await eventually(() => leaks.length > 0, 5000), 'an untouched body was never reported');
      assert.equal(leaks[0]?.path, '/blob');
      untouched.destroy();
    } finally {
      agent.destroy();
      await server.close();
    }
  });
});
