import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ReapReport } from '../../src/server/index.js';
import { Housekeeper } from '../../src/internal/housekeeper.js';
import { activeResources, grown } from '../support/handles.js';
import { canCountSockets } from '../support/sockets.js';
import { closeServer, halfClosingClients, listen, serverSideSockets, UPGRADE_REQUEST, UPGRADE_RESPONSE, waitFor } from './helpers.js';

/** The soft limit on descriptors (each connection costs two here: client and server side). */
function fdLimit(): number {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match?.[1] === undefined || match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch {
    return Infinity;
  }
}

const CLIENTS = 5_000;
const UPGRADES = 1_000;
const HALF_CLOSED_MS = 300;
const CHECK_MS = 100;
const FDS_NEEDED = 2 * CLIENTS + 500;

const skip = !canCountSockets()
  ? 'needs /proc to count sockets from the kernel'
  : fdLimit() < FDS_NEEDED ? `needs ${FDS_NEEDED} file descriptors (ulimit -n is ${fdLimit()}): run ulimit -n ${FDS_NEEDED} first` : false;

/** A net.Server with allowHalfOpen whose application reads but never ends: incident 5 in miniature. */
function forgetfulNetServer(): { server: net.Server; accepted: net.Socket[] } {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket);
    socket.resume();
  });
  return { server, accepted };
}

/** An HTTP server whose upgrade handler answers 101, reads frames, and never handles the peer's end. */
function forgetfulUpgradeServer(): { server: http.Server; upgraded: net.Socket[] } {
  const upgraded: net.Socket[] = [];
  const server = http.createServer((_req, res) => { res.end('ok'); });
  server.on('upgrade', (_req, socket: net.Socket) => {
    upgraded.push(socket);
    socket.write(UPGRADE_RESPONSE);
    socket.on('data', () => { /* frames */ });
  });
  return { server, upgraded };
}

describe('half-closed sockets, counted from the kernel', { skip }, () => {
  it(`net.Server (allowHalfOpen), ${CLIENTS} clients half-close: without the guard all ${CLIENTS} stay in CLOSE_WAIT`, async () => {
    const { server, accepted } = forgetfulNetServer();
    const port = await listen(server);
    const { clients } = await halfClosingClients(port, CLIENTS);
    await waitFor(`${CLIENTS} CLOSE_WAIT sockets`, () => serverSideSockets(port, 'CLOSE_WAIT') === CLIENTS);
    // They stay: nothing in the process will ever close them.
    await new Promise((resolve) => setTimeout(resolve, HALF_CLOSED_MS + 2 * CHECK_MS));
    assert.equal(serverSideSockets(port, 'CLOSE_WAIT'), CLIENTS);
    for (const s of accepted) s.destroy();
    for (const c of clients) c.destroy();
    await closeServer(server);
  });

  it(`net.Server (allowHalfOpen), ${CLIENTS} clients half-close: with the guard 0 remain after halfClosedTimeoutMs + the check period, each reported`, async () => {
    const before = activeResources();
    const tasks = Housekeeper.for().taskCount;
    const { server } = forgetfulNetServer();
    const guard = guardServer(server, { name: 'couch', halfClosedTimeoutMs: HALF_CLOSED_MS, checkIntervalMs: CHECK_MS });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const { clients, remotes } = await halfClosingClients(port, CLIENTS);
    const lastHalfClose = Date.now();
    // Accepted by node, not only by the kernel: a connection still in the accept queue has no descriptor yet.
    await waitFor('no CLOSE_WAIT socket left', () => guard.stats().accepted === CLIENTS && guard.stats().open === 0 && serverSideSockets(port, 'CLOSE_WAIT') === 0);
    console.log(`# ${CLIENTS} half-closed: 0 CLOSE_WAIT ${Date.now() - lastHalfClose} ms after the last half-close (halfClosedTimeoutMs=${HALF_CLOSED_MS}, checkIntervalMs=${CHECK_MS})`);
    assert.equal(serverSideSockets(port), 0, 'every server-side socket is gone');
    assert.equal(reports.length, CLIENTS);
    for (const r of reports) {
      assert.equal(r.code, ServerCodes.HALF_CLOSED);
      assert.equal(r.action, 'ended');
      assert.equal(r.kind, 'net');
      assert.equal(r.server, 'couch');
      assert.ok(remotes.has(r.remote), `report names the client: ${r.remote}`);
      assert.ok(r.halfClosedMs !== null && r.halfClosedMs >= HALF_CLOSED_MS, `not before halfClosedTimeoutMs: ${String(r.halfClosedMs)}`);
      assert.ok(r.ageMs >= r.halfClosedMs);
    }
    assert.deepEqual(guard.stats().reaped, { halfClosed: CLIENTS, idle: 0, destroyed: 0 });
    await waitFor('clients closed', () => clients.every((c) => c.destroyed));
    await closeServer(server);
    assert.equal(guard.closed, true, 'the guard closes with its server');
    assert.equal(Housekeeper.for().taskCount, tasks, 'housekeeping task released');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it(`${UPGRADES} WebSocket-style upgraded sockets half-close: without the guard all stay in CLOSE_WAIT`, async () => {
    const { server, upgraded } = forgetfulUpgradeServer();
    const port = await listen(server);
    const { clients } = await halfClosingClients(port, UPGRADES, { greeting: UPGRADE_REQUEST, expect: '\r\n\r\n' });
    await waitFor(`${UPGRADES} CLOSE_WAIT sockets`, () => serverSideSockets(port, 'CLOSE_WAIT') === UPGRADES);
    await new Promise((resolve) => setTimeout(resolve, HALF_CLOSED_MS + 2 * CHECK_MS));
    assert.equal(serverSideSockets(port, 'CLOSE_WAIT'), UPGRADES);
    for (const s of upgraded) s.destroy();
    for (const c of clients) c.destroy();
    await closeServer(server);
  });

  it(`${UPGRADES} WebSocket-style upgraded sockets half-close: with the guard 0 remain, each reported with its upgrade`, async () => {
    const before = activeResources();
    const { server } = forgetfulUpgradeServer();
    const guard = guardServer(server, { name: 'ws', halfClosedTimeoutMs: HALF_CLOSED_MS, checkIntervalMs: CHECK_MS, keepAliveHint: 'safe' });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const { clients, remotes } = await halfClosingClients(port, UPGRADES, { greeting: UPGRADE_REQUEST, expect: '\r\n\r\n' });
    await waitFor('no CLOSE_WAIT socket left', () => guard.stats().accepted === UPGRADES && guard.stats().open === 0 && serverSideSockets(port, 'CLOSE_WAIT') === 0);
    assert.equal(reports.length, UPGRADES);
    for (const r of reports) {
      assert.equal(r.code, ServerCodes.HALF_CLOSED);
      assert.equal(r.kind, 'upgrade');
      assert.ok(remotes.has(r.remote), `report names the client: ${r.remote}`);
      assert.equal(r.owner, 'upgrade GET /ws', 'the route, without its query string');
      assert.ok(r.bytesIn >= UPGRADE_REQUEST.length && r.bytesOut >= UPGRADE_RESPONSE.length, `bytes ${r.bytesIn}/${r.bytesOut}`);
    }
    await waitFor('clients closed', () => clients.every((c) => c.destroyed));
    await closeServer(server);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(grown(before, activeResources()), {});
  });
});
