import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ConnectionInfo } from '../../src/server/index.js';
import { Housekeeper } from '../../src/internal/housekeeper.js';
import { activeResources, grown } from '../support/handles.js';
import { listen, UPGRADE_REQUEST, UPGRADE_RESPONSE, waitFor } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Outcome {
  readonly status: number;
  readonly body: string;
  readonly connection: string | undefined;
}

/** One request on `agent`; resolves with the whole response, rejects with the socket error. */
function get(port: number, path: string, agent: http.Agent | false, id?: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, headers: id === undefined ? {} : { 'x-id': String(id) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }); });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('shutdown()', () => {
  for (const idleGraceMs of [0, 1_000]) it(`under a bounded keep-alive load (idleGraceMs=${idleGraceMs}): 0 in-flight requests dropped, every client told to close, done within the deadline`, async () => {
    const before = activeResources();
    const seen = new Set<number>();
    const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      const id = Number(req.headers['x-id']);
      seen.add(id);
      // 20 to 120 ms of work, so that most clients have a request in flight when shutdown begins.
      setTimeout(() => { res.end(`done ${id}`); }, 20 + (id % 100));
    });
    const guard = guardServer(server, { name: 'api', keepAliveHint: 'safe', idleGraceMs });
    const port = await listen(server);

    const CLIENTS = 40;
    const MAX_REQUESTS = 4_000; // the load loop's bound, whatever happens
    let nextId = 0;
    const completed = new Set<number>();
    const failedUnseen: string[] = [];
    const failedSeen: string[] = [];
    const endings: string[] = [];
    const agents: http.Agent[] = [];
    const client = async (): Promise<void> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      while (nextId < MAX_REQUESTS) {
        const id = nextId++;
        try {
          const out = await get(port, `/work/${id}`, agent, id);
          assert.equal(out.body, `done ${id}`);
          completed.add(id);
          if (out.connection === 'close') {
            endings.push('told by Connection: close');
            return;
          }
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? String(error);
          // Let the server finish bookkeeping of a request it did see before judging.
          await sleep(5);
          if (seen.has(id)) failedSeen.push(`request ${id}: ${code}`);
          else failedUnseen.push(code);
          endings.push(code === 'ECONNREFUSED' ? 'refused after its idle socket was closed' : `idle socket closed under a request the server never read (${code})`);
          return;
        }
      }
      endings.push('ran out of the load budget');
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, client));
    await waitFor('200 completed requests', () => completed.size >= 200);
    const report = await guard.shutdown({ timeoutMs: 5_000 });
    await load;
    for (const agent of agents) agent.destroy();

    console.log(`# shutdown under load: ${JSON.stringify({ ...report, blockers: report.blockers.length, message: undefined })}; requests completed ${completed.size}, server saw ${seen.size}; refused or reset before being read: ${failedUnseen.length}; clients ended: ${JSON.stringify(Object.fromEntries([...new Set(endings)].map((e) => [e, endings.filter((x) => x === e).length])))}`);
    assert.deepEqual(failedSeen, [], 'no request the server read was dropped');
    for (const id of seen) assert.ok(completed.has(id), `request ${id} was read by the server and answered in full`);
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.deepEqual(report.blockers, []);
    assert.ok(report.durationMs < report.timeoutMs);
    assert.equal(endings.length, CLIENTS, 'every client ended');
    assert.ok(!endings.includes('ran out of the load budget'), 'every client was told to close, none ran until the bound');
    assert.ok(report.inFlightAtStart > 0, 'requests were in flight when it began');
    assert.ok(report.requestsCompleted >= report.inFlightAtStart, 'each in-flight request finished');
    assert.ok(report.closeHeadersSent >= report.inFlightAtStart);
    if (idleGraceMs > 0) {
      // A client between two requests sends its next one within the grace: told by the header, not reset.
      assert.deepEqual(failedUnseen, []);
      assert.ok(endings.every((e) => e === 'told by Connection: close'), JSON.stringify(endings));
    }
    assert.equal(guard.closed, true);
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('closes idle keep-alive sockets at once', async () => {
    const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => { res.end('ok'); });
    const guard = guardServer(server, { keepAliveHint: 'safe' });
    const port = await listen(server);
    const agents = Array.from({ length: 20 }, () => new http.Agent({ keepAlive: true }));
    for (const agent of agents) assert.equal((await get(port, '/', agent)).connection, 'keep-alive');
    await waitFor('20 idle sockets', () => guard.stats().connections.idle === 20);
    const report = await guard.shutdown({ timeoutMs: 10_000 });
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.connectionsAtStart, 20);
    assert.equal(report.idleClosed, 20);
    assert.equal(report.inFlightAtStart, 0);
    // Far below the deadline: nothing waited for the 60 s keep-alive timeout.
    assert.ok(report.durationMs < report.timeoutMs, `${report.durationMs} ms`);
    await waitFor('agents saw their sockets close', () => agents.every((a) => Object.keys(a.freeSockets).length === 0));
    for (const agent of agents) agent.destroy();
  });

  it('a response whose headers left before the shutdown: its socket is closed once the response ends', async () => {
    const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part, ');
      setTimeout(() => { res.end('last part'); }, 200);
    });
    const guard = guardServer(server, { keepAliveHint: 'safe' });
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true });
    const pending = get(port, '/stream', agent);
    await waitFor('request in flight', () => guard.stats().connections.active === 1);
    const report = await guard.shutdown({ timeoutMs: 5_000 });
    const out = await pending;
    assert.equal(out.body, 'first part, last part');
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.inFlightAtStart, 1);
    assert.equal(report.closeHeadersSent, 0, 'too late for a header');
    assert.equal(report.idleClosed, 1, 'closed by the guard once idle');
    agent.destroy();
  });

  it('destroys what is left at the deadline and names it: route, age, remote', async () => {
    const server = http.createServer((req, res) => {
      if (req.url?.startsWith('/stuck') === true) return; // never answers
      res.end('ok');
    });
    const guard = guardServer(server, { keepAliveHint: 'safe' });
    const port = await listen(server);
    const socket = net.connect({ port, host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => { /* reset by the deadline */ });
    socket.write('GET /stuck?session=secret HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('request in flight', () => guard.stats().connections.active === 1);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const report = await guard.shutdown({ timeoutMs: 300 });
    assert.equal(report.code, ServerCodes.SHUTDOWN_FORCED);
    assert.equal(report.blockers.length, 1);
    const blocker = report.blockers[0] as ConnectionInfo;
    assert.equal(blocker.owner, 'GET /stuck');
    assert.equal(blocker.remote, `127.0.0.1:${String(socket.localPort)}`);
    assert.equal(blocker.state, 'active');
    assert.equal(blocker.inFlight, 1);
    assert.ok(blocker.ageMs >= 300);
    assert.ok(report.durationMs >= 300);
    assert.match(report.message, /GET \/stuck/);
    assert.doesNotMatch(report.message, /secret/);
    await closed;
    await waitFor('the guard closed with its server', () => guard.closed);
  });

  it('hands upgraded sockets to closeConnection, and raw net sockets too', async () => {
    const server = http.createServer((_req, res) => { res.end('ok'); });
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write(UPGRADE_RESPONSE);
      socket.on('data', () => { /* frames */ });
    });
    const handed: ConnectionInfo[] = [];
    const guard = guardServer(server, {
      keepAliveHint: 'safe',
      closeConnection: (socket, info) => {
        handed.push(info);
        socket.end('goodbye');
      },
    });
    const port = await listen(server);
    const sockets = await Promise.all(Array.from({ length: 5 }, async () => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(UPGRADE_REQUEST);
      let text = '';
      socket.on('data', (chunk: Buffer) => { text += chunk.toString(); });
      await waitFor('101', () => text.includes('\r\n\r\n'));
      return { socket, text: () => text };
    }));
    const report = await guard.shutdown({ timeoutMs: 5_000 });
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.upgradedClosed, 5);
    assert.equal(handed.length, 5);
    for (const info of handed) {
      assert.equal(info.kind, 'upgrade');
      assert.equal(info.owner, 'upgrade GET /ws');
    }
    for (const s of sockets) assert.ok(s.text().endsWith('goodbye'));

    const net2 = net.createServer((socket) => { socket.resume(); });
    const netGuard = guardServer(net2);
    const netPort = await listen(net2);
    const raw = net.connect({ port: netPort, host: '127.0.0.1' });
    raw.resume();
    await waitFor('accepted', () => netGuard.stats().open === 1);
    const netReport = await netGuard.shutdown({ timeoutMs: 5_000 });
    assert.equal(netReport.code, ServerCodes.SHUTDOWN_CLEAN, netReport.message);
    assert.equal(netReport.upgradedClosed, 1);
    assert.equal(raw.destroyed, true);
  });

  it('readiness: the health check fails first, the server keeps serving through shutdownDelayMs, then stops accepting', async () => {
    const order: string[] = [];
    const server = http.createServer((_req, res) => { res.end('ok'); });
    const guard = guardServer(server, {
      keepAliveHint: 'safe',
      healthCheckPath: '/healthz',
      shutdownDelayMs: 400,
      beforeShutdown: () => { order.push('beforeShutdown'); },
    });
    guard.onShutdown(() => { order.push('onShutdown'); });
    const port = await listen(server);
    assert.equal((await get(port, '/healthz', false)).status, 200, 'the application answers its health check while ready');
    const done = guard.shutdown();
    assert.equal(guard.ready, false);
    const health = await get(port, '/healthz', false);
    assert.equal(health.status, 503);
    assert.equal(health.connection, 'close');
    assert.equal((await get(port, '/work', false)).status, 200, 'still serving during the delay');
    const report = await done;
    assert.deepEqual(order, ['beforeShutdown', 'onShutdown']);
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.healthChecksFailed, 1);
    assert.ok(report.durationMs >= 400);
    await assert.rejects(get(port, '/work', false), { code: 'ECONNREFUSED' });
    assert.equal(guard.shutdown(), done, 'a second call returns the first promise');
  });

  it('a guard with no connection left shuts down at once and releases everything', async () => {
    const before = activeResources();
    const tasks = Housekeeper.for().taskCount;
    const server = http.createServer((_req, res) => { res.end('ok'); });
    const guard = guardServer(server, { keepAliveHint: 'safe' });
    const port = await listen(server);
    await get(port, '/', false);
    await waitFor('connection gone', () => guard.stats().open === 0);
    const report = await guard.shutdown({ timeoutMs: 1_000 });
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN);
    assert.equal(report.connectionsAtStart, 0);
    await waitFor('closed', () => guard.closed);
    assert.equal(Housekeeper.for().taskCount, tasks);
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });
});

describe('shutdown() and close()', () => {
  it('a guard closed by hand during a shutdown stops waiting and reports what was still open as blockers', async () => {
    const server = http.createServer((req, res) => { if (req.url !== '/stuck') res.end('ok'); });
    const guard = guardServer(server, { keepAliveHint: 'safe' });
    const port = await listen(server);
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('in flight', () => guard.stats().connections.active === 1);
    const pending = guard.shutdown({ timeoutMs: 60_000 });
    await sleep(50);
    guard.close();
    const report = await pending;
    assert.equal(report.code, ServerCodes.SHUTDOWN_FORCED);
    assert.equal(report.blockers[0]?.owner, 'GET /stuck');
    assert.ok(report.durationMs < 60_000);
    socket.destroy();
    await waitFor('server closed', () => !server.listening);
  });
});
