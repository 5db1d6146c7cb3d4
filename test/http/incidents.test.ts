/**
 * The incidents of ../shared/INCIDENTS.md that happened on HTTP, reproduced against real loopback
 * servers and a fault-injecting proxy. Socket counts come from the kernel (/proc/net/tcp{,6} joined with
 * this process's file descriptors), not from Lifeguard's own bookkeeping.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { LifeguardDispatcher, type BodyLeakReport } from '../../src/http/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { callerLocation, pointsAt } from '../support/site.js';
import { canCountSockets, socketsTo } from '../support/sockets.js';
import { eventually, handleSnapshot, ok, peakDuring, sleep, startServer } from './helpers.js';

const skip = canCountSockets() ? false : 'needs Linux /proc/net/tcp and /proc/self/fd to count sockets';

const established = (port: number) => (): number => socketsTo(port, 'ESTABLISHED').length;

describe('incident 1: preheat jobs that never give connections back', { skip }, () => {
  it('50 jobs x 20 requests to a registry and its auth server stay within the caps, and leave nothing open', async () => {
    const handles = handleSnapshot();
    const registry = await startServer((_req, res) => { setTimeout(() => res.end('layer'), 1); });
    const auth = await startServer((_req, res) => { res.end('{"token":"t"}'); });
    const d = new LifeguardDispatcher({ name: 'preheat', connectionsPerOrigin: 4, maxConnections: 6 });
    const job = (n: number) => d.withScope(async (scope) => {
      for (let i = 0; i < 10; i++) {
        const token = await request(`${auth.url}/token?job=${n}`, { dispatcher: scope });
        await token.body.text();
        const layer = await request(`${registry.url}/v2/blobs/${n}/${i}`, { dispatcher: scope });
        assert.equal(await layer.body.text(), 'layer');
      }
    }, { connectionsPerOrigin: 2 });
    const count = (): number => established(registry.port)() + established(auth.port)();
    const { peak } = await peakDuring(count, Promise.all(Array.from({ length: 50 }, (_, n) => job(n))));
    assert.ok(peak <= 6, `at most maxConnections=6 open at once, saw ${peak}`);
    assert.ok(registry.peak <= 4 + 1 && auth.peak <= 4 + 1, `per origin about 4 (server saw ${registry.peak}/${auth.peak})`);
    assert.equal(registry.requests + auth.requests, 1000);
    // Every job's scope closed what it opened: nothing left, at the kernel's level.
    assert.ok(await eventually(() => count() === 0), `open after the jobs: ${count()}`);
    assert.deepEqual(socketsTo(registry.port, 'CLOSE_WAIT'), []);
    await d.close();

    // Without Lifeguard: an undici Agent per job that nobody closes keeps its connections after the job.
    const agents: Agent[] = [];
    for (let n = 0; n < 5; n++) {
      const agent = new Agent();
      agents.push(agent);
      await Promise.all(Array.from({ length: 4 }, () => request(`${registry.url}/v2/x`, { dispatcher: agent }).then((r) => r.body.text())));
    }
    assert.ok(established(registry.port)() >= 5, 'the unscoped baseline leaves connections open after its jobs');
    await Promise.all(agents.map((a) => a.close()));
    await Promise.all([registry.close(), auth.close()]);
    assert.deepEqual(await handles.leftover(), {});
  });
});

describe('incident 2: a registry at its connection cap answers 401', { skip }, () => {
  it('with connectionsPerOrigin at the cap and 401 retried, no request fails; a plain undici Agent fails some', async () => {
    const server = await startServer((_req, res) => { setTimeout(() => res.end('manifest'), 10); });
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, cap: 10, capStatus: 401 });
    const load = async (dispatcher: LifeguardDispatcher | Agent): Promise<number[]> =>
      Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const r = await request(`${proxy.url}/v2/library/image/manifests/${i}`, { dispatcher });
        await r.body.text();
        return r.statusCode;
      }));
    try {
      const d = new LifeguardDispatcher({ connectionsPerOrigin: 10, retry: { statuses: [401, 429, 502, 503, 504], initialDelayMs: 10, maxAttempts: 5 } });
      const statuses = await load(d);
      assert.equal(statuses.filter((s) => s !== 200).length, 0, 'no request failed');
      assert.ok(proxy.peak <= 10, `the registry never saw more than 10 connections (saw ${proxy.peak})`);
      await d.close();

      proxy.resetPeak();
      const plain = new Agent();
      const baseline = await load(plain);
      await plain.close();
      assert.ok(baseline.filter((s) => s === 401).length > 0, 'without Lifeguard some requests get 401');
      assert.ok(proxy.capped > 0);
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});

describe('incident 5 on the client: the server closes idle connections', { skip }, () => {
  it('after 3 s idle behind a 1 s idle close, requests succeed, no error surfaces and no CLOSE_WAIT socket is held', async () => {
    const handles = handleSnapshot();
    const server = await startServer(ok());
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: { closeIdleAfterMs: 1000 } });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 5, retry: false });
    const errors: unknown[] = [];
    const batch = (): Promise<unknown> => Promise.all(Array.from({ length: 20 }, () => request(proxy.url, { dispatcher: d }).then((r) => r.body.text()).catch((e: unknown) => { errors.push(e); })));
    try {
      await batch();
      assert.equal(d.stats().connections, 5);
      await sleep(1500);
      assert.deepEqual(socketsTo(proxy.port, 'CLOSE_WAIT'), [], 'no CLOSE_WAIT right after the server closed');
      assert.equal(d.stats().connections, 0, 'every closed connection was evicted while idle');
      await sleep(1500);
      assert.deepEqual(socketsTo(proxy.port, 'CLOSE_WAIT'), []);
      await batch();
      assert.deepEqual(errors, []);
      assert.equal(d.stats().transparentRetries, 0, 'nothing had to be retried: no stale socket was ever used');
    } finally {
      await d.close();
      await proxy.close();
      await server.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('(control) a socket that ignores the server FIN sits in CLOSE_WAIT, which the check above would catch', async () => {
    const server = await startServer(ok());
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: { closeIdleAfterMs: 100 } });
    const raw = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
    raw.on('error', () => undefined);
    try {
      assert.ok(await eventually(() => socketsTo(proxy.port, 'CLOSE_WAIT').length === 1, 2000));
    } finally {
      raw.destroy();
      await proxy.close();
      await server.close();
    }
  });
});

describe('incident 4: response bodies never consumed', { skip }, () => {
  const big = 'x'.repeat(512 * 1024); // past every buffer: the connection stays busy until the body is read

  it('reports each unconsumed body with the line that made the request, and the queue timeout names it', async () => {
    const server = await startServer(ok(big));
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 2, bodyLeakWarnAfterMs: 150, leakDetection: 'full', acquireTimeoutMs: 400, retry: false });
    const leaks: BodyLeakReport[] = [];
    d.on('leak', (report: BodyLeakReport) => { leaks.push(report); });
    let site = '';
    const leakyHandler = async (): Promise<number> => {
      site = callerLocation(1); const r = await request(`${server.url}/blob`, { dispatcher: d });
      return r.statusCode; // the body is never read
    };
    try {
      assert.equal(await leakyHandler(), 200);
      assert.equal(await leakyHandler(), 200);
      assert.ok(await eventually(() => leaks.length === 2, 2000), `two leak events, got ${leaks.length}`);
      for (const leak of leaks) {
        assert.equal(leak.code, 'LG_HTTP_BODY_LEAK');
        assert.ok(pointsAt(leak.site, site), `site ${leak.site} should point at ${site}`);
        assert.match(leak.message, /response body of GET http:\/\/127\.0\.0\.1:\d+\/blob unconsumed for \d+ ms/);
      }
      await assert.rejects(request(`${server.url}/next`, { dispatcher: d }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'LG_HTTP_QUEUE_TIMEOUT');
        assert.match(e.message, /connections held by call site: .*incidents\.test\.(ts|js):\d+:\d+\) x2/);
        return true;
      });
    } finally {
      await d.destroy();
      await server.close();
    }
  });

  it('cancels bodies left past bodyAbandonAfterMs and destroys their connections, so the pool recovers', async () => {
    const server = await startServer(ok(big));
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1, bodyLeakWarnAfterMs: 50, bodyAbandonAfterMs: 200, retry: false });
    const kinds: string[] = [];
    d.on('leak', (report: BodyLeakReport) => { kinds.push(report.kind); });
    try {
      const abandoned = await request(`${server.url}/a`, { dispatcher: d });
      const bodyError = new Promise<Error>((resolve) => abandoned.body.on('error', resolve));
      const next = await request(`${server.url}/b`, { dispatcher: d });
      assert.equal((await next.body.text()).length, big.length);
      const error = await bodyError as Error & { code?: string };
      assert.equal(error.code, 'LG_HTTP_BODY_ABANDONED');
      assert.deepEqual(kinds, ['held', 'abandoned']);
      assert.equal(d.stats().bodiesAbandoned, 1);
    } finally {
      await d.close();
      await server.close();
    }
  });
});
