/** Regression test of issue 13 §3: draining a retryable response's body never outlives the request's deadline. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { HttpErrorCodes, LifeguardDispatcher } from '../../src/http/index.js';
import { eventually, startServer } from './helpers.js';

describe('retry of a retryable status', () => {
  it('stalled-retry-drain-honours-deadline: a 503 whose body stalls fails at the deadline with an error that says so, not a queue timeout seconds later', async () => {
    // Headers and half the body, then nothing: the drain before the retry can never complete.
    const server = await startServer((_req, res) => {
      res.writeHead(503, { 'retry-after': '0', 'content-length': '1000' });
      res.write('x'.repeat(500));
    });
    const deadlineMs = 800;
    // bodyTimeoutMs bounds the run without the fix (it was the only thing that ended the drain).
    const d = new LifeguardDispatcher({ retry: { deadlineMs }, bodyTimeoutMs: 6000 });
    const started = performance.now();
    try {
      const error = await request(`${server.url}/busy`, { dispatcher: d }).then(() => null, (e: unknown) => e as Error & { code?: string });
      const tookMs = performance.now() - started;
      assert.ok(error !== null, 'the request succeeded');
      assert.equal(error.code, HttpErrorCodes.DEADLINE, error.message);
      assert.match(error.message, /503/);
      assert.match(error.message, /deadlineMs=800/);
      // Far below the 6 s body timeout: the deadline ended it (generous for a loaded machine).
      assert.ok(tookMs < deadlineMs + 3000, `the caller was held ${Math.round(tookMs)} ms with an ${deadlineMs} ms deadline`);
      assert.ok(await eventually(() => d.stats().connections === 0), 'the connection with the half-drained body was never closed');
    } finally {
      await d.destroy();
      await server.close();
    }
  });

  it('stalled-retry-drain-honours-deadline: a drained 503 whose Retry-After would end past the deadline is not retried into a queue timeout', async () => {
    let n = 0;
    // The body takes 600 ms to arrive; the retry after it (Retry-After 0, backoff under 100 ms) would still fit, the third would not.
    const server = await startServer((_req, res) => {
      n++;
      res.writeHead(503, { 'retry-after': '0', 'content-length': '2' });
      res.write('x');
      setTimeout(() => { res.end('x'); }, 600);
    });
    const d = new LifeguardDispatcher({ retry: { deadlineMs: 1000, maxAttempts: 5 } });
    try {
      const error = await request(`${server.url}/busy`, { dispatcher: d }).then(() => null, (e: unknown) => e as Error & { code?: string });
      assert.ok(error !== null);
      assert.equal(error.code, HttpErrorCodes.DEADLINE, error.message);
      assert.ok(n <= 2, `${n} attempts`);
    } finally {
      await d.destroy();
      await server.close();
    }
  });
});
