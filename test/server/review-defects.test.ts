/** Regression tests of the defects found by the adversarial review of lifeguard/server (docs/server.md). */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes } from '../../src/server/index.js';
import { listen, waitFor } from './helpers.js';

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
});
