import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ReapReport } from '../../src/server/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { closeServer, listen, waitFor } from './helpers.js';

/** A guarded net server on a fake clock, and one connected client. */
async function setup(options: { halfClosedTimeoutMs?: number; idleTimeoutMs?: number; destroyAfterEndMs?: number }, onConnection: (socket: net.Socket) => void = (s) => { s.resume(); }) {
  const clock = new FakeClock();
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  const guard = guardServer(server, { checkIntervalMs: 100, ...options, clock });
  const reports: ReapReport[] = [];
  guard.on('reap', (r) => reports.push(r));
  const port = await listen(server);
  const client = net.connect({ port, host: '127.0.0.1' });
  client.on('error', () => { /* reset by a destroy in some tests */ });
  await new Promise((resolve) => client.once('connect', resolve));
  await waitFor('accepted', () => guard.stats().open === 1);
  return { clock, server, guard, reports, client };
}

describe('reaping rules on a fake clock', () => {
  it('a half-closed socket is ended after halfClosedTimeoutMs, not before, and at most one check period later', async () => {
    const { clock, server, guard, reports, client } = await setup({ halfClosedTimeoutMs: 1_000, idleTimeoutMs: Infinity });
    client.resume();
    client.end();
    await waitFor('half-closed', () => guard.connections()[0]?.state === 'half-closed');
    await clock.advance(950);
    assert.equal(reports.length, 0, 'not before the timeout');
    assert.equal(client.destroyed, false);
    await clock.advance(150); // 1100: the timeout plus one check period
    assert.equal(reports.length, 1);
    const r = reports[0]!;
    assert.equal(r.code, ServerCodes.HALF_CLOSED);
    assert.equal(r.action, 'ended');
    assert.ok(r.halfClosedMs! >= 1_000 && r.halfClosedMs! <= 1_100, String(r.halfClosedMs));
    assert.match(r.message, /half-closed .* ago and the application had not ended it \(halfClosedTimeoutMs=1000\)/);
    await waitFor('client closed by the FIN', () => client.destroyed);
    await waitFor('server side gone', () => guard.stats().open === 0);
    await closeServer(server);
  });

  it('a socket the application ends in time is left alone', async () => {
    const { clock, server, guard, reports, client } = await setup({ halfClosedTimeoutMs: 1_000 }, (socket) => {
      socket.resume();
      socket.on('end', () => { socket.end('bye'); });
    });
    client.resume();
    client.end();
    await waitFor('closed by the application', () => guard.stats().open === 0);
    await clock.advance(5_000);
    assert.equal(reports.length, 0);
    await closeServer(server);
  });

  it('a paused socket whose FIN was never read is found half-closed too', async () => {
    const { clock, server, guard, reports, client } = await setup({ halfClosedTimeoutMs: 1_000, idleTimeoutMs: Infinity }, () => { /* never reads */ });
    client.resume();
    client.end();
    // No 'end' event fires on a socket nobody reads; the check looks at the stream's state instead.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await clock.advance(100);
    assert.equal(guard.connections()[0]?.state, 'half-closed');
    await clock.advance(1_100);
    assert.equal(reports.length, 1);
    await waitFor('client closed', () => client.destroyed);
    await closeServer(server);
  });

  it('an idle socket is ended after idleTimeoutMs of no bytes; bytes in either direction reset the clock', async () => {
    let serverSide: net.Socket | undefined;
    const { clock, server, guard, reports, client } = await setup({ halfClosedTimeoutMs: Infinity, idleTimeoutMs: 5_000 }, (socket) => {
      serverSide = socket;
      socket.resume();
    });
    client.resume();
    await clock.advance(3_000);
    client.write('ping');
    await waitFor('bytes arrived', () => (serverSide?.bytesRead ?? 0) === 4);
    await clock.advance(3_000); // 6000 since accept, 3000 since the bytes were seen at the check
    assert.equal(reports.length, 0);
    serverSide!.write('pong');
    await clock.advance(3_000);
    assert.equal(reports.length, 0, 'bytes out count as activity');
    await clock.advance(2_200);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.code, ServerCodes.IDLE);
    assert.equal(reports[0]!.bytesIn, 4);
    assert.equal(reports[0]!.bytesOut, 4);
    await waitFor('client saw the FIN', () => client.readableEnded);
    client.end();
    await waitFor('gone', () => guard.stats().open === 0);
    await closeServer(server);
  });

  it('a socket that does not close after being ended is destroyed after destroyAfterEndMs, and reported again', async () => {
    // The server writes more than the buffers hold to a client that never reads: end() cannot finish.
    const { clock, server, guard, reports, client } = await setup({ halfClosedTimeoutMs: 1_000, idleTimeoutMs: Infinity, destroyAfterEndMs: 2_000 }, (socket) => {
      socket.resume();
      socket.on('end', () => { socket.write(Buffer.alloc(16 * 1024 * 1024)); });
    });
    client.pause();
    client.end();
    await waitFor('half-closed', () => guard.connections()[0]?.state === 'half-closed');
    await clock.advance(1_100);
    assert.deepEqual(reports.map((r) => r.action), ['ended']);
    assert.equal(guard.connections()[0]?.state, 'ending');
    await clock.advance(1_700); // 2800: ended at 1000 or 1100, so at most 1800 ms ago
    assert.equal(reports.length, 1, 'within the grace');
    await clock.advance(400); // 3200: at least 2100 ms since it was ended
    assert.deepEqual(reports.map((r) => [r.code, r.action]), [[ServerCodes.HALF_CLOSED, 'ended'], [ServerCodes.DESTROYED, 'destroyed']]);
    assert.deepEqual(guard.stats().reaped, { halfClosed: 1, idle: 0, destroyed: 1 });
    await waitFor('gone', () => guard.stats().open === 0);
    client.destroy();
    await closeServer(server);
  });

  it('without a reap listener, one process warning per code, the rest counted', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => { warnings.push(w); };
    process.on('warning', onWarning);
    try {
      const clock = new FakeClock();
      const server = net.createServer({ allowHalfOpen: true }, (s) => { s.resume(); });
      const guard = guardServer(server, { halfClosedTimeoutMs: 500, checkIntervalMs: 100, clock });
      const port = await listen(server);
      const clients = await Promise.all([1, 2, 3].map(async () => {
        const c = net.connect({ port, host: '127.0.0.1' });
        await new Promise((resolve) => c.once('connect', resolve));
        c.resume();
        c.end();
        return c;
      }));
      await waitFor('3 half-closed', () => guard.stats().connections['half-closed'] === 3);
      await clock.advance(700);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(guard.stats().reaped.halfClosed, 3);
      assert.equal(warnings.filter((w) => (w as { code?: string }).code === ServerCodes.HALF_CLOSED).length, 1);
      await waitFor('clients closed', () => clients.every((c) => c.destroyed));
      await closeServer(server);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
