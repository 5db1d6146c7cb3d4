import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fetch, getGlobalDispatcher, request, setGlobalDispatcher } from 'undici';
import { LifeguardDispatcher, withScope } from '../../src/http/index.js';
import { pools } from '../../src/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { socketsTo } from '../support/sockets.js';
import { eventually, handleSnapshot, ok, peakDuring, sleep, startServer } from './helpers.js';

describe('LifeguardDispatcher', () => {
  it('serves undici.request, fetch and the global dispatcher, reusing keep-alive connections', async () => {
    const handles = handleSnapshot();
    const server = await startServer(ok('hello'));
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 2 });
    const r = await request(`${server.url}/a`, { dispatcher: d });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'hello');
    const res = await fetch(`${server.url}/b`, { dispatcher: d });
    assert.equal(await res.text(), 'hello');
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(d);
    try {
      const g = await request(`${server.url}/c`);
      assert.equal(await g.body.text(), 'hello');
    } finally {
      setGlobalDispatcher(previous);
    }
    assert.equal(server.accepted, 1, 'three sequential requests share one connection');
    assert.equal(d.stats().requests, 3);
    await d.close();
    assert.equal(d.stats().connections, 0);
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it('never opens more than connectionsPerOrigin, queueing the rest first-in first-out', async () => {
    const server = await startServer((_req, res) => { setTimeout(() => res.end('ok'), 5); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 3 });
    const order: number[] = [];
    await Promise.all(Array.from({ length: 30 }, (_, i) => request(`${server.url}/${i}`, { dispatcher: d }).then(async (r) => {
      await r.body.text();
      order.push(i);
    })));
    assert.equal(server.peak, 3);
    assert.equal(server.accepted, 3);
    assert.equal(order.length, 30);
    await d.close();
    await server.close();
  });

  it('holds maxConnections across origins, evicting idle connections of one origin for another', async () => {
    const a = await startServer(ok('a'));
    const b = await startServer(ok('b'));
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 4, maxConnections: 4 });
    const burst = (url: string): Promise<unknown> => Promise.all(Array.from({ length: 12 }, () => request(url, { dispatcher: d }).then((r) => r.body.text())));
    await burst(a.url);
    assert.equal(d.stats().connections, 4);
    // All four slots are idle connections to a: b's requests must get slots by evicting them.
    await burst(b.url);
    assert.ok(d.stats().connections <= 4);
    assert.ok(b.accepted >= 1);
    await Promise.all([burst(a.url), burst(b.url)]);
    assert.ok(a.peak + b.peak <= 8);
    assert.ok(d.stats().connections <= 4, `at most 4 open, got ${d.stats().connections}`);
    await d.close();
    await Promise.all([a.close(), b.close()]);
  });

  it('rejects past maxWaiting with LG_HTTP_QUEUE_FULL and times out with LG_HTTP_QUEUE_TIMEOUT naming the holders', async () => {
    const server = await startServer((_req, res) => { res.write('partial'); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1, maxWaiting: 1, acquireTimeoutMs: 200, retry: false, leakDetection: 'full' });
    const held = await request(`${server.url}/held`, { dispatcher: d }); // holdsTheConnection
    const queued = request(`${server.url}/queued`, { dispatcher: d });
    await assert.rejects(request(`${server.url}/over`, { dispatcher: d }), (e: Error & { code?: string }) => e.code === 'LG_HTTP_QUEUE_FULL');
    await assert.rejects(queued, (e: Error & { code?: string }) => {
      assert.equal(e.code, 'LG_HTTP_QUEUE_TIMEOUT');
      assert.match(e.message, /GET \/held running for \d+ ms, body unconsumed/);
      assert.match(e.message, /dispatcher\.test\.(ts|js):\d+/);
      return true;
    });
    held.body.destroy();
    await d.close();
    await server.close();
  });

  it('never keeps a connection past the server keep-alive hint minus the margin', async () => {
    const server = await startServer((_req, res) => {
      res.setHeader('keep-alive', 'timeout=1');
      res.end('ok');
    });
    // timeout=1 s with a 1 s margin: never reusable, closed after each response.
    const d = new LifeguardDispatcher({ keepAliveSafetyMarginMs: 1000 });
    for (let i = 0; i < 3; i++) await (await request(server.url, { dispatcher: d })).body.text();
    assert.equal(server.accepted, 3);
    assert.ok(await eventually(() => d.stats().connections === 0));
    await d.close();
    await server.close();

    const server2 = await startServer((_req, res) => {
      res.setHeader('keep-alive', 'timeout=1');
      res.end('ok');
    });
    // A 700 ms margin leaves 300 ms of reuse: undici's timer closes it, the pool evicts it.
    const d2 = new LifeguardDispatcher({ keepAliveSafetyMarginMs: 700 });
    await (await request(server2.url, { dispatcher: d2 })).body.text();
    await (await request(server2.url, { dispatcher: d2 })).body.text();
    assert.equal(server2.accepted, 1, 'reused within the hint');
    await sleep(500);
    await (await request(server2.url, { dispatcher: d2 })).body.text();
    assert.equal(server2.accepted, 2, 'not reused past hint minus margin');
    await d2.close();
    await server2.close();
  });

  it('evicts an idle connection the server half-closes at once: no CLOSE_WAIT socket lingers', async () => {
    const server = await startServer(ok('ok'));
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: server.port } });
    const d = new LifeguardDispatcher();
    try {
      await (await request(proxy.url, { dispatcher: d })).body.text();
      assert.equal(d.stats().connections, 1);
      assert.equal(proxy.halfClose(), 1);
      assert.ok(await eventually(() => d.stats().connections === 0, 2000), 'evicted when the server half-closed it');
      assert.deepEqual(socketsTo(proxy.port, 'CLOSE_WAIT'), []);
      assert.equal(d.pools()[0]?.stats().destroyed.error, 1);
      await (await request(proxy.url, { dispatcher: d })).body.text();
      assert.equal(proxy.accepted, 2);
    } finally {
      await d.close();
      await proxy.close();
      await server.close();
    }
  });

  it('retries 503 with backoff, honours Retry-After, and never retries POST unless told to', async () => {
    let n = 0;
    const server = await startServer((req, res) => {
      n++;
      if (req.url === '/after' && n === 1) {
        res.writeHead(503, { 'retry-after': '1' });
        res.end('busy');
        return;
      }
      if (n % 2 === 1 && req.url !== '/after') {
        res.statusCode = 503;
        res.end('busy');
        return;
      }
      res.end('ok');
    });
    const d = new LifeguardDispatcher({ retry: { initialDelayMs: 5, maxDelayMs: 20 } });
    const r = await request(`${server.url}/get`, { dispatcher: d });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'ok');
    assert.equal(d.stats().retries, 1);
    n = 0;
    const post = await request(`${server.url}/post`, { dispatcher: d, method: 'POST', body: 'x' });
    assert.equal(post.statusCode, 503, 'POST is not retried');
    await post.body.text();
    n = 0;
    const started = Date.now();
    const after = await request(`${server.url}/after`, { dispatcher: d });
    assert.equal(after.statusCode, 200);
    await after.body.text();
    assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    await d.close();

    n = 0;
    const d2 = new LifeguardDispatcher({ retry: { initialDelayMs: 5, retryNonIdempotent: true } });
    const post2 = await request(`${server.url}/post`, { dispatcher: d2, method: 'POST', body: 'x' });
    assert.equal(post2.statusCode, 200, 'POST with a replayable body is retried when allowed');
    await post2.body.text();
    await d2.close();
    await server.close();
  });

  it('gives up at maxAttempts and shows the last response', async () => {
    const server = await startServer((_req, res) => { res.statusCode = 429; res.end('slow down'); });
    const d = new LifeguardDispatcher({ retry: { initialDelayMs: 1, maxAttempts: 3 } });
    const r = await request(server.url, { dispatcher: d });
    assert.equal(r.statusCode, 429);
    assert.equal(await r.body.text(), 'slow down');
    assert.equal(server.requests, 3);
    await d.close();
    await server.close();
  });

  it('retries once, transparently, an idempotent request whose reused connection died before any byte', async () => {
    let kill = false;
    const server = await startServer((req, res) => {
      if (kill) {
        kill = false;
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
    const d = new LifeguardDispatcher({ retry: false });
    await (await request(server.url, { dispatcher: d })).body.text();
    kill = true;
    const r = await request(server.url, { dispatcher: d });
    assert.equal(await r.body.text(), 'ok');
    assert.equal(d.stats().transparentRetries, 1);
    kill = true;
    await assert.rejects(request(server.url, { dispatcher: d, method: 'POST', body: 'x' }), 'a POST is never retried transparently');
    await d.close();
    await server.close();
  });

  it('fails a request at once when the connect is refused, after the retries', async () => {
    const server = await startServer(ok());
    const port = server.port;
    await server.close();
    const d = new LifeguardDispatcher({ retry: { initialDelayMs: 1, maxAttempts: 2 } });
    const started = Date.now();
    await assert.rejects(request(`http://127.0.0.1:${port}/`, { dispatcher: d }), (e: Error & { code?: string }) => e.code === 'ECONNREFUSED');
    assert.ok(Date.now() - started < 5000);
    await d.close();
  });

  it('cancels a request waiting in the queue when its signal aborts', async () => {
    const server = await startServer((_req, res) => { res.write('x'); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1 });
    const first = await request(server.url, { dispatcher: d });
    const controller = new AbortController();
    const waiting = request(server.url, { dispatcher: d, signal: controller.signal });
    controller.abort(new Error('user gave up'));
    await assert.rejects(waiting, /user gave up/);
    first.body.destroy();
    await d.close();
    await server.close();
  });

  it('retires connections at maxLifetimeMs: idle ones on the shared housekeeper, busy ones when their response ends', async () => {
    const server = await startServer((req, res) => { setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0); });
    const d = new LifeguardDispatcher({ maxLifetimeMs: 150, maxLifetimeJitterMs: 0 });
    try {
      await (await request(server.url, { dispatcher: d })).body.text();
      assert.equal(d.stats().connections, 1);
      assert.ok(await eventually(() => d.stats().connections === 0, 2000), 'idle connection retired without any request');
      assert.equal(d.pools()[0]?.stats().destroyed.lifetime, 1);
      await (await request(`${server.url}/slow`, { dispatcher: d })).body.text();
      assert.ok(await eventually(() => d.stats().connections === 0, 1000), 'busy connection retired when its response ended');
      assert.equal(d.pools()[0]?.stats().destroyed.lifetime, 2);
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('closes and forgets an origin\'s pool once it had no connection and no request for idleTimeoutMs', async () => {
    const handles = handleSnapshot();
    const a = await startServer(ok('a'));
    const b = await startServer(ok('b'));
    const d = new LifeguardDispatcher({ idleTimeoutMs: 100 });
    try {
      await (await request(a.url, { dispatcher: d })).body.text();
      await (await request(b.url, { dispatcher: d })).body.text();
      assert.equal(d.pools().length, 2);
      const poolOfA = d.pools().find((p) => p.stats().name.endsWith(a.url));
      assert.ok(poolOfA !== undefined);
      // Keep b busy: its pool must stay while a's goes (connection closed at 100 ms, pool forgotten 100 ms later).
      const keepB = setInterval(() => { void request(b.url, { dispatcher: d }).then((r) => r.body.text()); }, 20);
      try {
        assert.ok(await eventually(() => d.pools().length === 1, 3000), 'the idle origin pool is closed');
        assert.equal(d.pools()[0]?.stats().name.endsWith(b.url), true);
        assert.equal(poolOfA.stats().closed, true);
        assert.equal(pools().includes(poolOfA as never), false, 'and no longer listed by pools()');
      } finally {
        clearInterval(keepB);
      }
      // The origin comes back: a fresh pool serves it.
      assert.equal(await (await request(a.url, { dispatcher: d })).body.text(), 'a');
      assert.equal(d.stats().requests >= 3, true);
    } finally {
      await d.close();
      await a.close();
      await b.close();
    }
    assert.deepEqual(await handles.leftover(), {});
  });

  it('regression: keeps the pool of an origin in steady use whose connections never outlive a request (Connection: close)', async () => {
    const server = await startServer((_req, res) => { res.setHeader('connection', 'close'); res.end('once'); });
    const d = new LifeguardDispatcher({ idleTimeoutMs: 100 });
    const seen = new Set<unknown>();
    try {
      // Past several idleTimeoutMs of steady traffic, every connection closed after its one response.
      const until = performance.now() + 600;
      while (performance.now() < until) {
        assert.equal(await (await request(server.url, { dispatcher: d })).body.text(), 'once');
        for (const pool of d.pools()) seen.add(pool);
        await sleep(30);
      }
      assert.equal(seen.size, 1, 'one pool for the origin all along, never reaped while in use');
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('serves handlers written against undici\'s new interface, and rejects a bad origin with LG_HTTP_INVALID_ORIGIN', async () => {
    const server = await startServer(ok('new-api'));
    const d = new LifeguardDispatcher();
    try {
      const result = await new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let status = 0;
        let headers: Record<string, unknown> = {};
        d.dispatch({ origin: server.url, path: '/', method: 'GET' }, {
          onRequestStart: () => undefined,
          onResponseStart: (_controller, statusCode, h) => {
            status = statusCode;
            headers = h;
          },
          onResponseData: (_controller, chunk) => { chunks.push(chunk); },
          onResponseEnd: () => { resolve({ status, body: Buffer.concat(chunks).toString(), headers }); },
          onResponseError: (_controller, error) => { reject(error); },
        });
      });
      assert.equal(result.status, 200);
      assert.equal(result.body, 'new-api');
      assert.equal(result.headers['content-type'], 'text/plain');
      const error = await new Promise<Error & { code?: string }>((resolve) => {
        d.dispatch({ origin: 'ftp://127.0.0.1:21', path: '/', method: 'GET' }, { onRequestStart: () => undefined, onResponseError: (_controller, e) => { resolve(e); } });
      });
      assert.equal(error.code, 'LG_HTTP_INVALID_ORIGIN');
    } finally {
      await d.close();
      await server.close();
    }
  });

  it('rejects unknown and invalid options, naming the option', () => {
    assert.throws(() => new LifeguardDispatcher({ connectionPerOrigin: 3 } as never), (e: Error & { code?: string }) => e.code === 'LG_INVALID_OPTION' && /"connectionPerOrigin"/.test(e.message));
    assert.throws(() => new LifeguardDispatcher({ idleTimeoutMs: -1 }), /"idleTimeoutMs": expected a number >= 1, got number -1/);
    assert.throws(() => new LifeguardDispatcher({ retry: { statuses: [99] } }), /"retry.statuses"/);
    // Which entry is wrong, and what it is (it said "got an array" for ['401']).
    assert.throws(() => new LifeguardDispatcher({ retry: { statuses: [429, '401'] as never } }), /invalid option "retry.statuses": expected an array of HTTP status codes \(integers 100-599\), but \[1\] is not one, got the string "401"/);
    assert.throws(() => new LifeguardDispatcher({ retry: { maxAttemps: 2 } as never }), /unknown option "retry.maxAttemps" for retry/);
    assert.throws(() => new LifeguardDispatcher({ bodyLeakWarnAfterMs: 1000, bodyAbandonAfterMs: 10 }), /"bodyAbandonAfterMs"/);
  });

  it('close-timeout-above-max-timer: closeTimeoutMs above 2^31-1 ms is rejected at construction, naming the option and the maximum', async () => {
    // It was accepted, and only close() failed (node cannot keep a longer timer: it would fire after 1 ms).
    const tooLong = 2 ** 31;
    assert.throws(() => new LifeguardDispatcher({ closeTimeoutMs: tooLong }), (e: Error & { code?: string }) =>
      e.code === 'LG_INVALID_OPTION' && /"closeTimeoutMs"/.test(e.message) && /at most 2147483647/.test(e.message) && new RegExp(`got number ${tooLong}`).test(e.message));
    // The other timer-backed durations are held to the same maximum.
    for (const option of ['acquireTimeoutMs', 'connectTimeoutMs', 'idleTimeoutMs', 'headersTimeoutMs', 'bodyTimeoutMs'] as const) {
      assert.throws(() => new LifeguardDispatcher({ [option]: tooLong }), new RegExp(`"${option}": expected at most 2147483647`), option);
    }
    assert.throws(() => new LifeguardDispatcher({ retry: { deadlineMs: tooLong } }), /"retry.deadlineMs": expected at most 2147483647/);
    // The maximum itself and "no deadline" stay valid.
    await new LifeguardDispatcher({ closeTimeoutMs: 2 ** 31 - 1 }).close();
    await new LifeguardDispatcher({ closeTimeoutMs: Infinity }).close();
  });

  it('rejects requests after close with LG_HTTP_CLOSED', async () => {
    const d = new LifeguardDispatcher();
    await d.close();
    await assert.rejects(request('http://127.0.0.1:9/', { dispatcher: d }), (e: Error & { code?: string }) => e.code === 'LG_HTTP_CLOSED');
  });
});

describe('scopes', () => {
  it('close every connection the job opened when it ends, even when it throws', async () => {
    const handles = handleSnapshot();
    const server = await startServer(ok());
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 8 });
    const result = await d.withScope(async (scope) => {
      await Promise.all(Array.from({ length: 10 }, () => request(server.url, { dispatcher: scope }).then((r) => r.body.text())));
      assert.equal(scope.stats().connections, 2);
      assert.equal(d.stats().connections, 2, 'a scope counts against its parent');
      return 'done';
    }, { connectionsPerOrigin: 2 });
    assert.equal(result, 'done');
    assert.equal(d.stats().connections, 0);
    await assert.rejects(d.withScope(async (scope) => {
      await request(server.url, { dispatcher: scope }).then((r) => r.body.text());
      throw new Error('job failed');
    }), /job failed/);
    assert.equal(d.stats().connections, 0);
    assert.ok(await eventually(() => server.open === 0));
    const standalone = await withScope({ connectionsPerOrigin: 1 }, async (scope) => (await request(server.url, { dispatcher: scope })).body.text());
    assert.equal(standalone.length, 1024);
    await d.close();
    await server.close();
    assert.deepEqual(await handles.leftover(), {});
  });

  it('cannot exceed the parent caps together', async () => {
    const server = await startServer((_req, res) => { setTimeout(() => res.end('ok'), 5); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 3, maxConnections: 3 });
    const { peak } = await peakDuring(() => socketsTo(server.port, 'ESTABLISHED').length, Promise.all(Array.from({ length: 4 }, () => d.withScope(async (scope) => {
      await Promise.all(Array.from({ length: 6 }, () => request(server.url, { dispatcher: scope }).then((r) => r.body.text())));
    }))));
    assert.ok(peak <= 3, `peak ${peak}`);
    await d.close();
    await server.close();
  });
});

describe('regressions', () => {
  it('sends a request once when its connect failed and the retry queued a second pool waiter', async () => {
    // Seen in review: the pool waiter given up on after the failed connect stayed queued with the same
    // receiver as the retry's, so once the server came up both got a connection and the request went
    // out twice (the server counted 2 hits for 1 request).
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as net.AddressInfo;
        probe.close(() => { resolve(free); });
      });
    });
    let hits = 0;
    const server = http.createServer((_req, res) => { hits++; res.end('ok'); });
    const d = new LifeguardDispatcher({ connectionsPerOrigin: 1, acquireTimeoutMs: 5000, retry: { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 50, onConnectionError: true } });
    try {
      const pending = request(`http://127.0.0.1:${port}/x`, { dispatcher: d });
      assert.ok(await eventually(() => d.stats().retries >= 1), 'the first connect was refused and retried');
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      const res = await pending;
      assert.equal(await res.body.text(), 'ok');
      await sleep(300); // time for a duplicate to arrive
      assert.equal(hits, 1, 'one request, one hit');
    } finally {
      await d.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
