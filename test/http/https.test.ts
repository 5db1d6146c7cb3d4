import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher, LifeguardHttpsAgent, type BodyLeakReport } from '../../src/http/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { callerLocation, pointsAt } from '../support/site.js';
import { canCountSockets, socketsTo } from '../support/sockets.js';
import { eventually, handleSnapshot, ok, peakDuring, startHttpsServer, testCertificate } from './helpers.js';

const { cert: ca } = testCertificate();

interface Got { status: number; body: string; reused: boolean; socket: tls.TLSSocket }

function get(url: string, options: https.RequestOptions): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, options, (res) => {
      const socket = res.socket;
      if (!(socket instanceof tls.TLSSocket)) {
        reject(new Error('the response did not come over a TLS socket'));
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket, socket }); });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('LifeguardHttpsAgent', () => {
  it('works with https.get over TLS and reuses keep-alive sockets, leaving no handle behind', async () => {
    const handles = handleSnapshot();
    const server = await startHttpsServer(ok('hi'));
    const agent = new LifeguardHttpsAgent({ connectionsPerOrigin: 2 });
    assert.ok(agent instanceof https.Agent && agent instanceof http.Agent);
    assert.equal((agent as unknown as { protocol: string }).protocol, 'https:');
    const sockets = new Set<tls.TLSSocket>();
    for (let i = 0; i < 5; i++) {
      const got = await get(`${server.url}/${i}`, { agent, ca });
      assert.equal(got.body, 'hi');
      assert.equal(got.reused, i > 0);
      assert.equal(got.socket.alpnProtocol, 'http/1.1');
      sockets.add(got.socket);
    }
    assert.equal(server.accepted, 1, 'five sequential requests over one TLS connection');
    assert.equal(sockets.size, 1);
    // The doctor's socket() hook gives the TLS socket itself.
    assert.ok(agent.pools()[0]?.inspect().resources.some((r) => r.socket === [...sockets][0]) ?? false, 'inspect() names the TLS socket');
    assert.deepEqual(server.servernames, [false], 'no SNI for an IP address');
    await agent.close();
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it('holds connectionsPerOrigin over TLS', async () => {
    const server = await startHttpsServer((_req, res) => { setTimeout(() => res.end('ok'), 5); });
    const agent = new LifeguardHttpsAgent({ connectionsPerOrigin: 2 });
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${server.url}/p${i}`, { agent, ca })));
    assert.ok(all.every((g) => g.body === 'ok'));
    assert.equal(server.peak, 2, 'never more than connectionsPerOrigin');
    assert.equal(server.accepted, 2);
    assert.equal(agent.stats().requests, 20);
    await agent.close();
    await server.close();
  });

  it('pools per TLS option set: an unverifiable request fails with the TLS error and never gets a verified socket', async () => {
    const server = await startHttpsServer(ok('ok'));
    const agent = new LifeguardHttpsAgent();
    try {
      const first = await get(server.url, { agent, ca });
      assert.equal(first.body, 'ok');
      // An idle socket verified with `ca` exists for this origin: a request without `ca` must not get it.
      await assert.rejects(get(server.url, { agent, rejectUnauthorized: true }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', e.message);
        return true;
      });
      const again = await get(server.url, { agent, ca });
      assert.equal(again.socket, first.socket, 'the request with ca reuses its own socket');
      const insecure = await get(server.url, { agent, rejectUnauthorized: false });
      assert.notEqual(insecure.socket, first.socket, 'a different rejectUnauthorized means a different socket');
      assert.equal(agent.pools().length, 3, 'one pool per TLS option set');
      assert.equal(new Set(agent.pools().map((p) => p.name)).size, 3);
      assert.equal(server.handshakes, 2);
      assert.equal(server.accepted, 3, 'the failed handshake was a connection of its own');
      // A Host header names the server (SNI), as in node's https.Agent; it is another key too.
      const named = await get(server.url, { agent, ca, headers: { host: 'localhost' } });
      assert.notEqual(named.socket, first.socket);
      assert.equal(server.servernames.at(-1), 'localhost');
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('evicts an idle TLS socket the server half-closed: no CLOSE_WAIT, and the next request succeeds', async () => {
    const server = await startHttpsServer(ok('ok'));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port } });
    const url = `https://127.0.0.1:${proxy.port}`;
    const agent = new LifeguardHttpsAgent();
    try {
      assert.equal((await get(url, { agent, ca })).body, 'ok');
      assert.equal(agent.stats().connections, 1);
      assert.equal(proxy.halfClose(), 1);
      assert.ok(await eventually(() => agent.stats().connections === 0, 2000));
      if (canCountSockets()) assert.deepEqual(socketsTo(proxy.port, 'CLOSE_WAIT'), []);
      const next = await get(url, { agent, ca });
      assert.equal(next.body, 'ok');
      assert.equal(next.reused, false);
    } finally {
      await agent.close();
      await proxy.close();
      await server.close();
    }
  });

  it('reports a response body left unconsumed, with the call site', async () => {
    const server = await startHttpsServer(ok('x'.repeat(512 * 1024)));
    const agent = new LifeguardHttpsAgent({ bodyLeakWarnAfterMs: 100, leakDetection: 'full', tls: { ca } });
    const leaks: BodyLeakReport[] = [];
    agent.on('leak', (report: BodyLeakReport) => { leaks.push(report); });
    let site = '';
    // The agent's `tls` option is its default: no per-request `ca` needed.
    const res = await new Promise<http.IncomingMessage>((resolve) => { site = callerLocation(1); https.get(server.url, { agent }, resolve); });
    try {
      assert.ok(await eventually(() => leaks.length === 1, 2000));
      assert.equal(leaks[0]?.code, 'LG_HTTP_BODY_LEAK');
      assert.equal(leaks[0]?.origin, server.url);
      assert.ok(pointsAt(leaks[0]?.site, site), `${leaks[0]?.site} should point at ${site}`);
    } finally {
      res.destroy();
      agent.destroy();
      await server.close();
    }
  });

  it('fails the connect when the TLS handshake does not finish within connectTimeoutMs', async () => {
    const handles = handleSnapshot();
    const server = await startHttpsServer(ok());
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port }, behaviour: { hang: true } });
    const agent = new LifeguardHttpsAgent({ connectTimeoutMs: 100, tls: { ca } });
    try {
      const started = Date.now();
      await assert.rejects(get(`https://127.0.0.1:${proxy.port}`, { agent }), /TLS connect \(TCP and handshake\) to 127\.0\.0\.1:\d+ timed out after 100 ms/);
      assert.ok(Date.now() - started < 2000);
      assert.equal(agent.stats().connections, 0);
    } finally {
      await agent.close();
      await proxy.close();
      await server.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('cannot be replaced by the http agent: node requires agent.protocol to match', async () => {
    const agent = new LifeguardAgent();
    assert.throws(() => https.get('https://127.0.0.1:1/', { agent }), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_PROTOCOL');
    await agent.close();
  });
});

describe('LifeguardDispatcher over https', () => {
  it('connects with the tls option, reuses connections, and fails without the ca', async () => {
    const handles = handleSnapshot();
    const server = await startHttpsServer(ok('secure'));
    const d = new LifeguardDispatcher({ tls: { ca }, connectionsPerOrigin: 2 });
    for (let i = 0; i < 3; i++) {
      const r = await request(`${server.url}/${i}`, { dispatcher: d });
      assert.equal(await r.body.text(), 'secure');
    }
    assert.equal(server.accepted, 1, 'three sequential requests over one TLS connection');
    const bare = new LifeguardDispatcher({ retry: false });
    await assert.rejects(request(server.url, { dispatcher: bare }), (e: Error & { code?: string }) => e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT');
    await bare.close();
    await d.close();
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it('shares its caps and its tls option with the https agent it makes', async () => {
    const server = await startHttpsServer((_req, res) => { setTimeout(() => res.end('ok'), 5); });
    const d = new LifeguardDispatcher({ tls: { ca }, connectionsPerOrigin: 3 });
    const agent = d.createHttpsAgent();
    assert.ok(agent instanceof https.Agent);
    const work = Promise.all([
      ...Array.from({ length: 15 }, (_, i) => get(`${server.url}/a${i}`, { agent })),
      ...Array.from({ length: 15 }, (_, i) => request(`${server.url}/d${i}`, { dispatcher: d }).then((r) => r.body.text())),
    ]);
    // Counted on our side (the kernel's table), as in agent.test.ts: the server may still hold a socket we closed.
    const { peak } = canCountSockets() ? await peakDuring(() => socketsTo(server.port, 'ESTABLISHED').length, work) : { peak: (await work, d.stats().connections) };
    assert.ok(peak <= 3, `agent and dispatcher together hold at most 3 connections, saw ${peak}`);
    assert.ok(d.stats().connections <= 3);
    await d.close();
    assert.equal(agent.stats().connections, 0, 'closing the dispatcher closed the agent sockets');
    assert.throws(() => d.createHttpsAgent(), (e: Error & { code?: string }) => e.code === 'LG_HTTP_CLOSED');
    await server.close();
  });
});
