import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import { guardServer, ServerCodes } from '../../src/server/index.js';
import { listen, waitFor } from './helpers.js';

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
