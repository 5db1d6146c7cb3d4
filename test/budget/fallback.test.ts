/**
 * Issue 15 §5: what acquires do while Redis is unreachable, on a private redis-server that is stopped and
 * restarted: 'fail' (the default) rejects with LG_BUDGET_UNAVAILABLE; `{ capacity: n }` grants up to n
 * permits per process once Redis has been silent for one TTL, alerts, and registers them in Redis when it
 * answers again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { InvalidOptionError } from '../../src/index.js';
import { RedisBudget, type BudgetFallbackEvent, type Permit } from '../../src/budget/index.js';
import { PrivateRedis, privateRedisCheck } from './private-redis.js';

const privateCheck = privateRedisCheck();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const TTL = 800;

describe('RedisBudget when Redis is unreachable', { skip: privateCheck.skip, timeout: 60_000 }, () => {
  it("rejects a bad fallback option, naming it", () => {
    for (const bad of [0, 'wait', { capacity: 0 }, { capacity: 5 }, { capacity: 1.5 }, { capacity: 1, extra: 1 }, null]) {
      assert.throws(() => new RedisBudget({ redis: 'redis://127.0.0.1:1', key: 'k', limit: 4, fallback: bad as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'fallback' && /expected 'fail' or \{ capacity: n \} with an integer n from 1 to limit \(4\)/.test(e.message));
    }
    assert.throws(() => new RedisBudget({ redis: 'redis://127.0.0.1:1', key: 'k', limit: 4, onFallback: 3 as never }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'onFallback');
  });

  it("'fail' (default): acquires reject with LG_BUDGET_UNAVAILABLE while Redis is stopped, and work resumes once it restarts", async () => {
    const server = await PrivateRedis.start();
    const budget = new RedisBudget({ redis: { host: '127.0.0.1', port: server.port }, key: 'remote', limit: 2, permitTtlMs: TTL, recoveryGraceMs: 0 });
    try {
      (await budget.acquire()).release();
      await server.stop();
      const started = Date.now();
      await assert.rejects(budget.acquire({ timeoutMs: 10_000 }), { code: 'LG_BUDGET_UNAVAILABLE' });
      assert.ok(Date.now() - started < 5000, 'waited instead of failing fast');
      assert.equal(budget.stats().fallback.active, false);
      await sleep(TTL * 1.5);
      await assert.rejects(budget.acquire({ timeoutMs: 10_000 }), { code: 'LG_BUDGET_UNAVAILABLE' }, 'no fallback without the option, however long Redis is away');
      await server.start();
      let permit: Permit | null = null;
      const deadline = Date.now() + 10_000;
      while (permit === null && Date.now() < deadline) {
        permit = await budget.acquire({ timeoutMs: 2000 }).catch(() => null);
        if (permit === null) await sleep(50);
      }
      assert.ok(permit !== null, 'no permit after Redis restarted');
      permit.release();
      assert.equal(budget.stats().fallback.entered, 0);
    } finally {
      await budget.close();
      await server.stop();
    }
  });

  it('{ capacity: 2 }: after one TTL of silence each process grants itself up to 2, with an alert; on restart they are registered in Redis and fallback ends', async () => {
    const server = await PrivateRedis.start();
    const events: BudgetFallbackEvent[] = [];
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      if (warning.code === 'LIFEGUARD_BUDGET_FALLBACK') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    const options = { redis: { host: '127.0.0.1', port: server.port }, key: 'remote', limit: 4, permitTtlMs: TTL, recoveryGraceMs: TTL, fallback: { capacity: 2 }, onFallback: (e: BudgetFallbackEvent) => { events.push(e); } } as const;
    const a = new RedisBudget(options);
    const b = new RedisBudget(options);
    const admin = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    try {
      await sleep(TTL); // the first use on a fresh server waits for the recovery grace; let it pass
      const held = await Promise.all([a.acquire(), a.acquire(), a.acquire()]);
      const stoppingAt = performance.now();
      await server.stop();
      const stoppedAt = Date.now();
      // A's Redis permits are not kept in fallback: each one's local validity ends no later than Redis could
      // expire it (every refresh was sent before the stop), and it is reported lost. The report itself rides a
      // timer, so its lateness on a loaded machine is not what is checked; validUntil is what the pool trusts.
      for (const p of held) assert.ok((p as Permit & { validUntil: number }).validUntil <= stoppingAt + TTL, 'a Redis permit outlived its TTL in fallback');
      await Promise.all(held.map((p) => new Promise((resolve) => { if (p.lost.aborted) resolve(null); else p.lost.addEventListener('abort', resolve); })));
      // B waits: no fallback grant until Redis has been silent for one TTL (every Redis grant has expired by then).
      const first = b.acquire({ timeoutMs: 10_000 });
      const second = b.acquire({ timeoutMs: 10_000 });
      const granted = await Promise.all([first, second]);
      const waited = Date.now() - stoppedAt;
      assert.ok(waited >= TTL * 0.9, `fallback granted ${waited} ms after Redis stopped, before one TTL (${TTL})`);
      assert.equal(b.stats().fallback.active, true);
      assert.equal(b.stats().fallback.granted, 2);
      for (const p of granted) assert.equal((p as Permit & { validUntil: number }).validUntil, Infinity, 'a fallback permit is valid while fallback lasts');
      // The capacity is per process and holds: a third waits, and times out naming the outage.
      await assert.rejects(b.acquire({ timeoutMs: 300 }), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'LG_BUDGET_TIMEOUT' && /has not answered for \d+ ms .*in fallback, this process's capacity 2 is in use/.test(e.message));
      assert.ok(events.some((e) => e.active && e.key === 'remote' && e.ms >= TTL * 0.9), `no fallback event: ${JSON.stringify(events)}`);
      assert.ok(warnings.some((w) => /in fallback: this process grants itself up to 2 permits/.test(w)), 'no LIFEGUARD_BUDGET_FALLBACK warning');
      // A released fallback permit frees local capacity for the next local waiter.
      const third = b.acquire({ timeoutMs: 5000 });
      granted[0]?.release();
      const again = await third;

      // Redis comes back (empty): B's fallback permits are registered, fallback ends.
      await server.start();
      await admin.connect();
      const deadline = Date.now() + 10_000;
      while ((b.stats().fallback.active || (await admin.zcard('lifeguard:budget:{remote}:permits')) < 2) && Date.now() < deadline) await sleep(50);
      assert.equal(b.stats().fallback.active, false, 'still in fallback after Redis answered');
      const ids = await admin.zrange('lifeguard:budget:{remote}:permits', '0', '-1');
      assert.deepEqual(ids.sort(), [granted[1]?.id, again.id].sort(), 'the fallback permits were registered in Redis');
      assert.ok(events.some((e) => !e.active), 'no event when fallback ended');
      assert.ok(Number.isFinite((again as Permit & { validUntil: number }).validUntil), 'a registered permit is refreshed like any other');
      assert.equal(again.lost.aborted, false);
      granted[1]?.release();
      again.release();
      // And grants go through Redis again (after the restart's recovery grace).
      const viaRedis = await a.acquire({ timeoutMs: 10_000 });
      assert.equal(await admin.zscore('lifeguard:budget:{remote}:permits', viaRedis.id) !== null, true);
      viaRedis.release();
    } finally {
      process.off('warning', onWarning);
      admin.disconnect();
      await Promise.all([a.close(), b.close()]);
      await server.stop();
    }
  });
});
