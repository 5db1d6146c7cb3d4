/** Regression tests of the defects found by the adversarial review of lifeguard/server (docs/server.md). */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes, type ReapReport } from '../../src/server/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { closeServer, listen, waitFor } from './helpers.js';

/** A raw client: writes `data` (then half-closes if asked) and collects every byte until the socket closes. */
function rawClient(port: number, data: string, halfClose: boolean): { socket: net.Socket; text: () => string; done: Promise<string> } {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  const text = (): string => Buffer.concat(chunks).toString('latin1');
  const done = new Promise<string>((resolve) => {
    socket.on('connect', () => { socket.write(data); if (halfClose) socket.end(); });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => { /* the outcome is judged on the bytes received */ });
    socket.on('close', () => { resolve(text()); });
  });
  return { socket, text, done };
}

describe('review defects', () => {
  it('pipelined-shutdown: every pipelined response is delivered, only the last says Connection: close, and a cut response is never clean', async () => {
    const pending: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => { pending.push(res); });
    const guard = guardServer(server, { shutdownTimeoutMs: 20_000 });
    const port = await listen(server);
    const req = (p: number): string => `GET /${p} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const client = rawClient(port, req(1) + req(2) + req(3), false);
    await waitFor('3 requests dispatched', () => pending.length === 3);
    const shutdown = guard.shutdown();
    await waitFor('shutdown stopped accepting', () => !server.listening);
    for (const [i, res] of pending.entries()) res.end(`answer /${String(i + 1)}\n`);
    const report = await shutdown;
    const text = await client.done;
    assert.deepEqual(text.match(/answer \/\d/g), ['answer /1', 'answer /2', 'answer /3'], text);
    assert.deepEqual(text.match(/Connection: [\w-]+/gi), ['Connection: keep-alive', 'Connection: keep-alive', 'Connection: close'], text);
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.requestsCompleted, 3);
    assert.equal(report.closeHeadersSent, 1);
  });

  it('pipelined-shutdown: a response cut by the shutdown makes it not clean', async () => {
    const pending: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => { pending.push(res); });
    const guard = guardServer(server, { shutdownTimeoutMs: 20_000 });
    const port = await listen(server);
    const client = rawClient(port, 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\n', false);
    await waitFor('request dispatched', () => pending.length === 1);
    const shutdown = guard.shutdown();
    await waitFor('shutdown stopped accepting', () => !server.listening);
    pending[0]!.socket?.destroy(); // the application (or a proxy in between) drops it half-way
    const report = await shutdown;
    await client.done;
    assert.equal(report.code, ServerCodes.SHUTDOWN_FORCED, report.message);
    assert.equal(report.requestsUnfinished, 1);
    assert.match(report.message, /1 response\(s\) did not finish/);
  });

  it('stream-halfclosed-http: the half-close rule never cuts an HTTP response in flight', async () => {
    const clock = new FakeClock();
    let response: http.ServerResponse | null = null;
    const server = http.createServer((req, res) => { response = res; res.writeHead(200); res.write('chunk 0\n'); });
    (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true; // else node itself ends the socket on the peer's FIN
    const guard = guardServer(server, { halfClosedTimeoutMs: 200, checkIntervalMs: 50, destroyAfterEndMs: 100, clock });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const client = rawClient(port, 'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n', true);
    await waitFor('first chunk', () => client.text().includes('chunk 0'));
    await waitFor('half-closed', () => guard.connections()[0]?.halfClosedMs !== null);
    for (let i = 1; i <= 10; i++) {
      response!.write(`chunk ${String(i)}\n`);
      await clock.advance(50);
    }
    await clock.advance(500); // a pause in the stream: still in flight
    assert.deepEqual(reports.map((r) => r.code), []);
    response!.end('done\n');
    const text = await client.done;
    assert.ok(text.includes('chunk 10') && text.includes('done'), text);
    await closeServer(server);
  });

  it('stream-halfclosed-net: the half-close rule does not end a socket the application is still writing to', async () => {
    const clock = new FakeClock();
    let accepted: net.Socket | null = null;
    const server = net.createServer({ allowHalfOpen: true }, (socket) => { accepted = socket; socket.resume(); });
    const guard = guardServer(server, { halfClosedTimeoutMs: 200, checkIntervalMs: 50, destroyAfterEndMs: 100, clock });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const client = rawClient(port, 'hello', true);
    await waitFor('half-closed', () => guard.connections()[0]?.halfClosedMs != null);
    for (let i = 0; i < 12; i++) {
      accepted!.write(`line ${String(i)}\n`);
      await waitFor(`line ${String(i)} received`, () => client.text().includes(`line ${String(i)}\n`));
      await clock.advance(50);
    }
    assert.deepEqual(reports.map((r) => r.code), [], 'written to within every check period');
    // It stops writing and never ends: now the rule applies.
    await clock.advance(300);
    assert.deepEqual(reports.map((r) => r.code), [ServerCodes.HALF_CLOSED]);
    await client.done;
    await closeServer(server);
  });

  it('slow-reader-destroyed: a socket ended by the application is not destroyed while its bytes still flow', async () => {
    const clock = new FakeClock();
    const SIZE = 16 * 1024 * 1024;
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.resume();
      socket.once('end', () => { socket.end(Buffer.alloc(SIZE, 120)); });
    });
    const guard = guardServer(server, { halfClosedTimeoutMs: 200, checkIntervalMs: 50, destroyAfterEndMs: 300, clock });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = 0;
    let target = 0;
    socket.on('error', () => { /* judged on bytes */ });
    socket.on('data', (c: Buffer) => { got += c.length; if (got >= target) socket.pause(); });
    socket.pause();
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.end('request');
    await waitFor('ended by the application', () => guard.connections()[0]?.state === 'ending');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    // A slow reader: half a megabyte every check period, far longer than destroyAfterEndMs in all (the
    // kernel moves bytes in batches of its buffers, so the server sees them move every few periods).
    for (let i = 0; i < 16; i++) {
      target = got + 512 * 1024;
      socket.resume();
      await waitFor('a slice read', () => got >= Math.min(target, SIZE));
      // The server side must see its sent bytes move (its kernel buffer drains into ours).
      await new Promise((resolve) => setTimeout(resolve, 20));
      await clock.advance(50);
    }
    assert.deepEqual(reports.map((r) => r.code), [], 'bytes were moving');
    assert.equal(guard.stats().reaped.halfClosed, 0, 'the application ended it, not the guard');
    target = Infinity;
    socket.resume();
    await closed;
    assert.equal(got, SIZE);
    await closeServer(server);
  });

  for (const event of ['checkContinue', 'checkExpectation'] as const) it(`checkcontinue: a request delivered by '${event}' is tracked like 'request' (idle rule, shutdown)`, async () => {
    const clock = new FakeClock();
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => { res.end('plain'); });
    server.on(event, (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (event === 'checkContinue') res.writeContinue();
      req.resume();
      held.push(res);
    });
    const guard = guardServer(server, { idleTimeoutMs: 200, checkIntervalMs: 50, shutdownTimeoutMs: 60_000, clock });
    guard.on('warning', () => { /* keep-alive hint alignment is not the subject */ });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true });
    const response = new Promise<string>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/upload', agent, headers: { expect: event === 'checkContinue' ? '100-continue' : 'x-custom', 'content-length': 5 } }, (res) => {
        res.resume();
        res.on('end', () => { resolve(String(res.headers.connection)); });
      });
      req.on('error', reject);
      if (event === 'checkContinue') req.on('continue', () => { req.end('hello'); });
      else req.end('hello');
    });
    await waitFor('request held', () => held.length === 1);
    await clock.advance(1_000);
    assert.deepEqual(reports.map((r) => r.code), [], 'a request is in flight');
    assert.equal(guard.connections()[0]?.inFlight, 1);
    const shutdown = guard.shutdown();
    await waitFor('stopped accepting', () => !server.listening);
    held[0]!.end('done');
    assert.equal(await response, 'close');
    const report = await shutdown;
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
    assert.equal(report.inFlightAtStart, 1);
    assert.equal(report.closeHeadersSent, 1);
    agent.destroy();
  });

  it('guard-after-listen: a guard added to a listening server warns, and its shutdown waits for the connections it does not track', async () => {
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => { held.push(res); });
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true });
    const response = new Promise<string>((resolve, reject) => {
      http.get({ port, host: '127.0.0.1', agent, path: '/slow' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => { resolve(body); });
      }).on('error', reject);
    });
    await waitFor('request held', () => held.length === 1);
    const guard = guardServer(server, { name: 'late' });
    const warnings: string[] = [];
    guard.on('warning', (w) => warnings.push(w.code));
    await waitFor('untracked warning', () => warnings.includes(ServerCodes.UNTRACKED));
    let settled = false;
    const shutdown = guard.shutdown({ timeoutMs: 60_000 }).then((r) => { settled = true; return r; });
    await waitFor('stopped accepting', () => !server.listening);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(settled, false, 'an untracked connection is still serving a request');
    held[0]!.end('slow answer');
    assert.equal(await response, 'slow answer');
    agent.destroy();
    const report = await shutdown;
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
  });

  it('http2-idle: the idle rule does not end an HTTP/2 connection with a stream in flight', async () => {
    const clock = new FakeClock();
    const held: http2.ServerHttp2Stream[] = [];
    const server = http2.createServer();
    server.on('stream', (stream) => { held.push(stream); });
    const guard = guardServer(server, { idleTimeoutMs: 200, checkIntervalMs: 50, clock });
    const reports: ReapReport[] = [];
    guard.on('reap', (r) => reports.push(r));
    const port = await listen(server);
    const client = http2.connect(`http://127.0.0.1:${String(port)}`);
    client.on('error', () => { /* judged below */ });
    const body = new Promise<string>((resolve, reject) => {
      const stream = client.request({ ':path': '/slow' });
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => { text += c; });
      stream.on('end', () => { resolve(text); });
      stream.on('error', reject);
    });
    await waitFor('stream held', () => held.length === 1);
    await clock.advance(1_000);
    assert.deepEqual(reports.map((r) => r.code), [], 'a stream is in flight');
    assert.equal(guard.connections()[0]?.inFlight, 1);
    held[0]!.respond({ ':status': 200 });
    held[0]!.end('slow answer');
    assert.equal(await body, 'slow answer');
    client.close();
    await closeServer(server);
  });

  it('lifecycle: shutdown() after the server closed does not close it again (one close event)', async () => {
    const server = http.createServer((req, res) => { res.end('x'); });
    let closes = 0;
    server.on('close', () => { closes++; });
    const guard = guardServer(server);
    await listen(server);
    await closeServer(server);
    await guard.shutdown({ timeoutMs: 500 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closes, 1);
  });

  for (const how of ['throws', 'rejects'] as const) it(`upgrade-hooks: when closeConnection ${how}, the socket is ended instead`, async () => {
    const server = net.createServer((socket) => { socket.resume(); });
    const guard = guardServer(server, {
      shutdownTimeoutMs: 60_000,
      closeConnection: how === 'throws' ? () => { throw new Error('hook bug'); } : () => Promise.reject(new Error('hook bug')),
    });
    const port = await listen(server);
    const client = rawClient(port, 'hello', false);
    await waitFor('accepted', () => guard.stats().open === 1);
    const warned = new Promise((resolve) => process.once('warning', resolve));
    const report = await guard.shutdown();
    await warned;
    await client.done;
    assert.equal(report.code, ServerCodes.SHUTDOWN_CLEAN, report.message);
  });
});
