import assert from 'node:assert/strict';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ReapReport } from '../../src/server/index.js';
import { testCertificate } from '../http/helpers.js';
import { canCountSockets } from '../support/sockets.js';
import { closeServer, listen, serverSideSockets, UPGRADE_REQUEST, UPGRADE_RESPONSE, waitFor } from './helpers.js';

const skip = canCountSockets() ? false : 'needs /proc to count sockets from the kernel';

describe('https', { skip }, () => {
  it('upgraded TLS sockets: tracked through the handshake with their upgrade, none left in CLOSE_WAIT after their peers end', async () => {
    const server = https.createServer(testCertificate(), (_req, res) => { res.end('ok'); });
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write(UPGRADE_RESPONSE);
      socket.on('data', () => { /* frames */ });
    });
    const guard = guardServer(server, { halfClosedTimeoutMs: 200, checkIntervalMs: 50, keepAliveHint: 'safe' });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const COUNT = 50;
    const clients = await Promise.all(Array.from({ length: COUNT }, () => new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => { socket.write(UPGRADE_REQUEST); });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\r\n\r\n')) resolve(socket);
      });
      socket.on('error', reject);
    })));
    await waitFor('all upgraded', () => guard.connections().filter((c) => c.kind === 'upgrade').length === COUNT);
    const remotes = new Set(clients.map((c) => `127.0.0.1:${String(c.localPort)}`));
    for (const c of guard.connections()) {
      assert.equal(c.owner, 'upgrade GET /ws');
      assert.equal(c.state, 'upgraded');
      assert.ok(remotes.has(c.remote), c.remote);
      assert.ok(c.bytesIn >= UPGRADE_REQUEST.length, String(c.bytesIn));
    }
    for (const c of clients) c.end();
    await waitFor('none left', () => guard.stats().open === 0 && serverSideSockets(port, 'CLOSE_WAIT') === 0);
    // Node's TLS sockets end themselves when the peer does (allowHalfOpen is off on https): nothing to reap.
    assert.equal(reports.length, 0);
    await waitFor('clients closed', () => clients.every((c) => c.destroyed));
    await closeServer(server);
    assert.equal(guard.closed, true);
  });

  it('a tls.Server with allowHalfOpen whose application never ends: half-closed TLS sockets are ended', async () => {
    const server = tls.createServer({ ...testCertificate(), allowHalfOpen: true }, (socket) => { socket.resume(); });
    const guard = guardServer(server, { halfClosedTimeoutMs: 200, checkIntervalMs: 50 });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const COUNT = 50;
    const clients = await Promise.all(Array.from({ length: COUNT }, () => new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
        socket.write('hello');
        socket.end();
        resolve(socket);
      });
      socket.on('error', reject);
      socket.resume();
    })));
    await waitFor('all reaped', () => guard.stats().accepted === COUNT && guard.stats().open === 0 && serverSideSockets(port, 'CLOSE_WAIT') === 0);
    assert.equal(reports.length, COUNT);
    for (const r of reports) {
      assert.equal(r.code, ServerCodes.HALF_CLOSED);
      assert.equal(r.kind, 'net');
    }
    await waitFor('clients closed', () => clients.every((c) => c.destroyed));
    await closeServer(server);
  });
});
