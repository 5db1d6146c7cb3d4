import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, servers, type ReapReport } from '../../src/server/index.js';
import { canCountSockets } from '../support/sockets.js';
import { closeServer, listen, serverSideSockets, waitFor } from './helpers.js';

describe('a server that listens again after close()', () => {
  it('re-listen after close stays guarded: a half-closed socket of the second listen is reaped (was unguarded, no warning)', async () => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => { s.resume(); });
    const guard = guardServer(server, { name: 'relisten', halfClosedTimeoutMs: 50, checkIntervalMs: 10 });
    const reaps: ReapReport[] = [];
    guard.on('reap', (r) => { reaps.push(r); });
    await listen(server);
    await closeServer(server);
    assert.equal(guard.closed, true, 'the guard closes with its server');

    const port = await listen(server);
    assert.equal(guard.closed, false, 'and opens again when it listens again');
    assert.ok(servers().includes(guard));
    const client = net.connect({ port, host: '127.0.0.1' });
    client.resume();
    client.on('connect', () => { client.end(); });
    try {
      await waitFor('the half-closed socket of the second listen reaped', () => reaps.length === 1, 5_000);
      assert.equal(reaps[0]?.code, 'LG_SERVER_HALF_CLOSED');
      assert.equal(guard.stats().accepted, 1);
      if (canCountSockets()) await waitFor('no CLOSE_WAIT left', () => serverSideSockets(port, 'CLOSE_WAIT') === 0, 5_000);
    } finally {
      client.destroy();
      await closeServer(server);
    }
    guard.close();
    assert.equal(server.emit, net.Server.prototype.emit, 'close() by hand puts emit back: no more re-opening');
  });

  it('re-listen after shutdown(): ready again, and a second shutdown() runs (not the first one\'s promise)', async () => {
    const server = http.createServer((_req, res) => { res.end('ok'); });
    const guard = guardServer(server, { name: 'relisten-http' });
    await listen(server);
    const first = await guard.shutdown({ timeoutMs: 1_000 });
    assert.equal(guard.ready, false);
    await listen(server);
    assert.equal(guard.ready, true);
    assert.equal(guard.shuttingDown, false);
    const second = await guard.shutdown({ timeoutMs: 1_000 });
    assert.notEqual(second, first);
    assert.equal(second.code, 'LG_SERVER_SHUTDOWN_CLEAN');
    guard.close();
  });

  it('a guard closed by hand does not come back; a new guard of the server replaces a closed one', async () => {
    const server = net.createServer();
    const first = guardServer(server, { name: 'by-hand' });
    await listen(server);
    first.close();
    await closeServer(server);
    await listen(server);
    assert.equal(first.closed, true);
    assert.ok(!servers().includes(first));
    await closeServer(server);
    const second = guardServer(server, { name: 'second' });
    await listen(server);
    await closeServer(server);
    const third = guardServer(server, { name: 'third' });
    assert.ok(!servers().includes(second), 'the replaced guard is no longer listed');
    await listen(server);
    assert.equal(second.closed, true, 'and does not re-open');
    assert.equal(third.closed, false);
    await closeServer(server);
    third.close();
  });
});
