import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ReapReport } from '../../src/server/index.js';
import { canCountSockets } from '../support/sockets.js';
import { listen, serverSideSockets, waitFor } from './helpers.js';

function request(client: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = client.request({ ':path': path });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => { status = Number(headers[':status']); });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => { body += chunk; });
    stream.on('end', () => { resolve({ status, body }); });
    stream.on('error', reject);
  });
}

describe('http2', () => {
  it('tracks sessions with their last stream and sends GOAWAY at shutdown while a stream finishes', async () => {
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const path = String(headers[':path']);
      setTimeout(() => {
        stream.respond({ ':status': 200 });
        stream.end(`done ${path}`);
      }, path.startsWith('/slow') ? 300 : 0);
    });
    server.on('request', () => { /* the compatibility API also runs; the stream handler answers */ });
    const guard = guardServer(server);
    const port = await listen(server);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => { /* GOAWAY */ });
    assert.equal((await request(client, '/first?x=1')).body, 'done /first?x=1');
    const [info] = guard.connections();
    assert.equal(info?.kind, 'http2');
    assert.equal(info?.state, 'upgraded');
    assert.equal(info?.owner, 'GET /first');
    assert.equal(info?.requests, 1);

    const slow = request(client, '/slow');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const report = await guard.shutdown({ timeoutMs: 5_000 });
    assert.equal((await slow).body, 'done /slow', 'the stream in flight finished after GOAWAY');
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.upgradedClosed, 1);
    client.close();
    await waitFor('guard closed with its server', () => guard.closed);
  });
});

describe('http2 half-close', () => {
  it('a CONNECT stream (tunnel, RFC 8441 WebSocket) the peer half-closed and the application never ends is reaped like an upgraded HTTP/1 socket', async () => {
    const server = http2.createServer();
    const held: http2.ServerHttp2Stream[] = [];
    server.on('stream', (stream, headers) => {
      if (headers[':method'] !== 'CONNECT') {
        stream.respond({ ':status': 200 });
        stream.end();
        return;
      }
      stream.respond({ ':status': 200 });
      stream.resume(); // reads to the peer's END_STREAM and never ends its side: the tunnel leak
      held.push(stream);
    });
    const guard = guardServer(server, { name: 'h2-tunnel', halfClosedTimeoutMs: 100, checkIntervalMs: 20, destroyAfterEndMs: 100 });
    const reaps: ReapReport[] = [];
    guard.on('reap', (r) => { reaps.push(r); });
    const port = await listen(server);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => { /* closed at the end */ });
    try {
      const tunnel = client.request({ ':method': 'CONNECT', ':authority': 'db.internal:5432' });
      tunnel.on('error', () => { /* reset, if it comes to that */ });
      await new Promise((resolve) => tunnel.once('response', resolve));
      tunnel.resume();
      tunnel.end(); // the peer half-closes its side of the stream
      await waitFor('the half-closed tunnel reaped', () => reaps.length > 0, 5_000);
      assert.equal(reaps[0]?.code, ServerCodes.HALF_CLOSED);
      assert.equal(reaps[0]?.owner, 'connect db.internal:5432');
      assert.equal(reaps[0]?.kind, 'http2');
      await waitFor('the stream closed on the server', () => held.every((s) => s.closed) && guard.connections()[0]?.inFlight === 0, 5_000);
      assert.equal(guard.stats().reaped.halfClosed, 1);
      // The session itself is alive: a request on it is still served.
      assert.equal((await request(client, '/after')).status, 200);
    } finally {
      client.close();
      await guard.shutdown({ timeoutMs: 1_000 });
    }
  });

  it('a session whose peer half-closed its TCP connection leaves no CLOSE_WAIT (node ends it; the guard forgets it)', async () => {
    const server = http2.createServer();
    server.on('stream', () => { /* never answers */ });
    const guard = guardServer(server, { name: 'h2-fin' });
    const port = await listen(server);
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const socket = net.connect({ port, host: '127.0.0.1' });
        sockets.push(socket);
        socket.on('error', () => { /* reset */ });
        socket.resume();
        const client = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
        client.on('error', () => { /* the connection ends under it */ });
        client.request({ ':path': '/hang' }).on('error', () => { /* aborted */ });
        await new Promise((resolve) => client.once('remoteSettings', resolve));
      }
      await waitFor('20 sessions', () => guard.stats().open === 20);
      for (const s of sockets) s.end();
      await waitFor('every session gone', () => guard.stats().open === 0, 5_000);
      if (canCountSockets()) await waitFor('no CLOSE_WAIT', () => serverSideSockets(port, 'CLOSE_WAIT') === 0, 5_000);
    } finally {
      for (const s of sockets) s.destroy();
      await guard.shutdown({ timeoutMs: 1_000 });
    }
  });
});
