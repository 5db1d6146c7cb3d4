import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client, fetch, request, type Dispatcher } from 'undici';
import { LifeguardDispatcher } from '../../src/http/index.js';
import { CLIENT_REQUEST_FIELDS } from '../../src/http/request.js';
import { startServer } from './helpers.js';

/** Every options object the pooled Clients were handed while `fn` ran. */
async function clientOptionsDuring(fn: () => Promise<void>): Promise<Dispatcher.DispatchOptions[]> {
  const seen: Dispatcher.DispatchOptions[] = [];
  const original = Client.prototype.dispatch;
  Client.prototype.dispatch = function (this: Client, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    seen.push(opts);
    return original.call(this, opts, handler);
  };
  try {
    await fn();
  } finally {
    Client.prototype.dispatch = original;
  }
  return seen;
}

/** Sends `opts` through `d.dispatch` (undici's new handler interface) and resolves with the response body. */
function dispatchText(d: Dispatcher, opts: Dispatcher.DispatchOptions): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    d.dispatch(opts, {
      onRequestStart: () => undefined,
      onResponseData: (_controller, chunk) => { chunks.push(chunk); },
      onResponseEnd: () => { resolve(Buffer.concat(chunks).toString()); },
      onResponseError: (_controller, error) => { reject(error); },
    });
  });
}

/** Answers with what it received: method, URL, headers and body. */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => { body += chunk; });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
}

describe('the options the dispatcher hands undici\'s Client', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('client-options-fields: CLIENT_REQUEST_FIELDS are the origin and exactly the options undici\'s Request reads', () => {
    // undici's Request destructures its options in the constructor's signature: a field added there
    // that the copy lacks would silently never reach the Client.
    const source = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.resolve('undici'))), 'lib', 'core', 'request.js'), 'utf8');
    const match = /class Request \{\s*constructor \(origin, \{([^}]*)\}, handler\)/.exec(source);
    assert.ok(match?.[1] !== undefined, 'undici\'s Request constructor no longer destructures its options in its signature: check what it reads');
    const read = match[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).sort();
    assert.deepEqual([...CLIENT_REQUEST_FIELDS].filter((f) => f !== 'origin').sort(), read);
  });

  it('client-options-one-shape: request(), fetch() and dispatch() hand the Client options of one shape, not the caller\'s object', async () => {
    const server = await startServer(echo);
    servers.push(server);
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1 });
    const given: Dispatcher.DispatchOptions = { origin: server.url, path: '/d', method: 'GET' };
    const seen = await clientOptionsDuring(async () => {
      const r = await request(`${server.url}/a`, { dispatcher: d });
      await r.body.dump();
      const f = await fetch(`${server.url}/b`, { dispatcher: d });
      await f.arrayBuffer();
      await dispatchText(d, given);
    });
    assert.equal(seen.length, 3);
    assert.ok(!seen.includes(given), 'the caller\'s options object is not the one the Client reads');
    const shapes = new Set(seen.map((o) => Object.keys(o).join(',')));
    assert.deepEqual([...shapes], [CLIENT_REQUEST_FIELDS.join(',')]);
    assert.deepEqual(seen.map((o) => o.path), ['/a', '/b', '/d']);
    await d.close();
  });

  it('client-options-carry-through: what a caller sets reaches the server (method, query, headers, body, reset)', async () => {
    const server = await startServer(echo);
    servers.push(server);
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1 });
    const r = await request(`${server.url}/p`, {
      dispatcher: d,
      method: 'POST',
      query: { a: '1', b: 'two' },
      headers: { 'x-lifeguard': 'yes' },
      body: 'hello',
      reset: true,
    });
    const got = (await r.body.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/p?a=1&b=two');
    assert.equal(got.headers['x-lifeguard'], 'yes');
    assert.equal(got.body, 'hello');
    assert.equal(got.headers['connection'], 'close', 'reset: true asks the server to close');
    // An option on the options' prototype is read, as undici's destructuring reads it.
    const inherited = Object.create({ headers: { 'x-inherited': '1' } }) as Dispatcher.DispatchOptions;
    Object.assign(inherited, { origin: server.url, path: '/i', method: 'GET' });
    const body = await dispatchText(d, inherited);
    assert.equal((JSON.parse(body) as { headers: Record<string, string> }).headers['x-inherited'], '1');
    await d.close();
  });
});
