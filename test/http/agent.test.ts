import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher, createAgent, createHttpsAgent, LifeguardHttpsAgent, type BodyLeakReport } from '../../src/http/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { callerLocation, pointsAt } from '../support/site.js';
import { canCountSockets, socketsTo } from '../support/sockets.js';
import { eventually, handleSnapshot, ok, peakDuring, startServer } from './helpers.js';

function get(url: string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }); });
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('LifeguardAgent', () => {
  it('works with http.get and http.request, and really reuses keep-alive sockets', async () => {
    const handles = handleSnapshot();
    const server = await startServer(ok('hi'));
    const agent = new LifeguardAgent({ connectionsPerOrigin: 2 });
    for (let i = 0; i < 5; i++) assert.deepEqual(await get(`${server.url}/${i}`, agent), { status: 200, body: 'hi' });
    assert.equal(server.accepted, 1, 'five sequential requests over one connection');
    const posted = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${server.url}/post`, { method: 'POST', agent }, (res) => {
        res.resume();
        res.on('end', () => { resolve(String(res.statusCode)); });
      });
      req.on('error', reject);
      req.end('payload');
    });
    assert.equal(posted, '200');
    await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${server.url}/p${i}`, agent)));
    assert.equal(server.peak, 2, 'never more than connectionsPerOrigin');
    assert.equal(server.accepted, 2);
    assert.equal(agent.stats().requests, 26);
    await agent.close();
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it("honours the server's Keep-Alive: timeout= hint and Connection: close, whatever their header case", async () => {
    // timeout=1 s minus the default 1 s safety margin leaves nothing: the socket must not be reused.
    const hinted = await startServer((_req, res) => { res.setHeader('KEEP-ALIVE', 'timeout=1'); res.end('a'); });
    const closing = await startServer((_req, res) => { res.setHeader('connection', 'Close'); res.end('b'); });
    const roomy = await startServer((_req, res) => { res.setHeader('Keep-Alive', 'timeout=30'); res.end('c'); });
    const agent = new LifeguardAgent({ connectionsPerOrigin: 2 });
    for (let i = 0; i < 3; i++) {
      assert.equal((await get(hinted.url, agent)).body, 'a');
      assert.equal((await get(closing.url, agent)).body, 'b');
      assert.equal((await get(roomy.url, agent)).body, 'c');
    }
    assert.equal(hinted.accepted, 3, 'a hint within the safety margin: never reused');
    assert.equal(closing.accepted, 3, 'Connection: close: never reused');
    assert.equal(roomy.accepted, 1, 'a 30 s hint: reused');
    await agent.close();
    await Promise.all([hinted.close(), closing.close(), roomy.close()]);
  });

  it('shares the caps of the dispatcher it was made from', async () => {
    const server = await startServer((_req, res) => { setTimeout(() => res.end('ok'), 5); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 3 });
    const agent = d.createAgent();
    const work = Promise.all([
      ...Array.from({ length: 15 }, (_, i) => get(`${server.url}/a${i}`, agent)),
      ...Array.from({ length: 15 }, (_, i) => request(`${server.url}/d${i}`, { dispatcher: d }).then((r) => r.body.text())),
    ]);
    const { peak } = canCountSockets() ? await peakDuring(() => socketsTo(server.port, 'ESTABLISHED').length, work) : { peak: (await work, d.stats().connections) };
    assert.ok(peak <= 3, `agent and dispatcher together hold at most 3 connections, saw ${peak}`);
    assert.ok(d.stats().connections <= 3);
    await d.close();
    assert.equal(agent.stats().connections, 0, 'closing the dispatcher closed the agent sockets');
    await server.close();
  });

  it("regression: node's http.Agent options (maxSockets, maxTotalSockets, keepAlive: true) were rejected as unknown; createAgent() did not exist", async () => {
    const handles = handleSnapshot();
    const server = await startServer((_req, res) => { setTimeout(() => { res.end('ok'); }, 5); });
    // The AWS SDK's usual agent, with only the class changed.
    const agent = createAgent({ keepAlive: true, maxSockets: 3 });
    assert.ok(agent instanceof LifeguardAgent && agent instanceof http.Agent);
    await Promise.all(Array.from({ length: 12 }, (_, i) => get(`${server.url}/${i}`, agent)));
    assert.equal(server.peak, 3, 'maxSockets caps each origin like connectionsPerOrigin');
    await agent.close();
    const second = await startServer((_req, res) => { setTimeout(() => { res.end('ok'); }, 5); });
    const total = new LifeguardAgent({ maxTotalSockets: 2, maxSockets: Infinity });
    await Promise.all(Array.from({ length: 8 }, (_, i) => get(`${second.url}/t${i}`, total)));
    assert.equal(second.peak, 2, 'maxTotalSockets caps the agent like maxConnections; maxSockets: Infinity is node\'s "no cap"');
    assert.equal(total.stats().requests, 8);
    await total.close();
    await second.close();
    const tls = createHttpsAgent({ maxSockets: 4 });
    assert.ok(tls instanceof LifeguardHttpsAgent);
    await tls.close();
    const invalid = (e: Error & { code?: string; option?: string }, option: string, words: RegExp): boolean =>
      e.code === 'LG_INVALID_OPTION' && e.option === option && words.test(e.message);
    assert.throws(() => new LifeguardAgent({ keepAlive: false }), (e: Error & { code?: string; option?: string }) => invalid(e, 'keepAlive', /expected true or nothing.*got boolean false/));
    assert.throws(() => createAgent({ maxSockets: 4, connectionsPerOrigin: 8 }), (e: Error & { code?: string; option?: string }) => invalid(e, 'maxSockets', /node.s name for "connectionsPerOrigin".*number 4 and number 8/));
    // A bad value under node's name is reported under that name (it said "connectionsPerOrigin", which the caller never wrote).
    assert.throws(() => createAgent({ maxSockets: 0 }), (e: Error & { code?: string; option?: string }) => invalid(e, 'maxSockets', /invalid option "maxSockets" \(node's name for "connectionsPerOrigin"\).*: expected an integer >= 1, got number 0/));
    assert.throws(() => createAgent({ maxTotalSockets: -1 }), (e: Error & { code?: string; option?: string }) => invalid(e, 'maxTotalSockets', /"maxTotalSockets" \(node's name for "maxConnections"\).*got number -1/));
    assert.throws(() => createAgent({ connectionsPerOrigin: 0 }), (e: Error & { code?: string; option?: string }) => invalid(e, 'connectionsPerOrigin', /^invalid option "connectionsPerOrigin"/));
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it('fails a request with LG_HTTP_QUEUE_TIMEOUT when no socket frees up', async () => {
    const server = await startServer((_req, res) => { res.write('x'); });
    const agent = new LifeguardAgent({ connectionsPerOrigin: 1, acquireTimeoutMs: 100 });
    const first = new Promise<http.IncomingMessage>((resolve) => { http.get(server.url, { agent }, resolve); });
    const res = await first;
    await assert.rejects(get(`${server.url}/2`, agent), (e: Error & { code?: string }) => e.code === 'LG_HTTP_QUEUE_TIMEOUT');
    res.destroy();
    agent.destroy();
    await server.close();
  });

  it('fails a request whose connect fails with the connect error at once, not at acquireTimeoutMs', async () => {
    const server = await startServer(ok());
    const port = server.port;
    await server.close();
    const agent = new LifeguardAgent({ acquireTimeoutMs: 10_000 });
    const started = Date.now();
    await assert.rejects(get(`http://127.0.0.1:${port}/`, agent), (e: Error & { code?: string }) => e.code === 'ECONNREFUSED');
    assert.ok(Date.now() - started < 2000, 'failed by the connect, not by the acquire timeout');
    await agent.close();
  });

  it('evicts an idle socket the server half-closed: no CLOSE_WAIT, and the next request succeeds', async () => {
    const server = await startServer(ok('ok'));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port } });
    const agent = new LifeguardAgent();
    try {
      assert.equal((await get(proxy.url, agent)).body, 'ok');
      assert.equal(proxy.halfClose(), 1);
      assert.ok(await eventually(() => agent.stats().connections === 0, 2000));
      if (canCountSockets()) assert.deepEqual(socketsTo(proxy.port, 'CLOSE_WAIT'), []);
      assert.equal((await get(proxy.url, agent)).body, 'ok');
    } finally {
      await agent.close();
      await proxy.close();
      await server.close();
    }
  });

  it('reports a response body left unconsumed, with the call site', async () => {
    const server = await startServer(ok('x'.repeat(512 * 1024)));
    const agent = new LifeguardAgent({ bodyLeakWarnAfterMs: 100, leakDetection: 'full' });
    const leaks: BodyLeakReport[] = [];
    agent.on('leak', (report: BodyLeakReport) => { leaks.push(report); });
    let site = '';
    const res = await new Promise<http.IncomingMessage>((resolve) => { site = callerLocation(1); http.get(server.url, { agent }, resolve); });
    try {
      assert.ok(await eventually(() => leaks.length === 1, 2000));
      assert.equal(leaks[0]?.code, 'LG_HTTP_BODY_LEAK');
      assert.ok(pointsAt(leaks[0]?.site, site), `${leaks[0]?.site} should point at ${site}`);
    } finally {
      res.destroy();
      agent.destroy();
      await server.close();
    }
  });

  it('closes and forgets an origin\'s pool once it had no socket and no request for idleTimeoutMs', async () => {
    const server = await startServer(ok('x'));
    const agent = new LifeguardAgent({ idleTimeoutMs: 100 });
    try {
      assert.equal((await get(server.url, agent)).body, 'x');
      assert.equal(agent.pools().length, 1);
      const pool = agent.pools()[0];
      assert.ok(await eventually(() => agent.pools().length === 0, 3000), 'the idle origin pool is closed');
      assert.equal(pool?.stats().closed, true);
      assert.equal((await get(server.url, agent)).body, 'x', 'a fresh pool serves the origin again');
      assert.equal(agent.pools().length, 1);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('regression: a socket the server closes before any response fails that request only (no crash reading the missing response)', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/drop') req.socket.destroy();
      else res.end('fine');
    });
    const agent = new LifeguardAgent({ connectionsPerOrigin: 1 });
    try {
      await assert.rejects(get(`${server.url}/drop`, agent), (error: Error & { code?: string }) => error.code === 'ECONNRESET' || /socket hang up/.test(error.message));
      assert.deepEqual(await get(`${server.url}/ok`, agent), { status: 200, body: 'fine' });
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('regression: a slow server\'s think time does not count as an unconsumed body (the clock starts at the headers)', async () => {
    // Headers after 400 ms, past bodyLeakWarnAfterMs=150: only the time after the headers may count.
    const server = await startServer((_req, res) => { setTimeout(() => { res.end('x'.repeat(512 * 1024)); }, 400); });
    const agent = new LifeguardAgent({ bodyLeakWarnAfterMs: 150 });
    const leaks: BodyLeakReport[] = [];
    agent.on('leak', (report: BodyLeakReport) => { leaks.push(report); });
    const started = performance.now();
    const res = await new Promise<http.IncomingMessage>((resolve) => { http.get(server.url, { agent }, resolve); });
    const headersAfter = performance.now() - started;
    try {
      assert.equal(leaks.length, 0, 'no leak while the server was still thinking');
      assert.equal(agent.stats().pendingBodies, 1);
      assert.ok(await eventually(() => leaks.length === 1, 2000), 'the unconsumed body is reported');
      const reportedAfter = performance.now() - started;
      assert.ok(reportedAfter - headersAfter >= 150, `reported ${Math.round(reportedAfter - headersAfter)} ms after the headers`);
      assert.ok((leaks[0]?.heldMs ?? 0) < reportedAfter - headersAfter + 1, 'heldMs counts from the headers, not from the lend');
    } finally {
      res.destroy();
      agent.destroy();
      await server.close();
    }
  });
});
