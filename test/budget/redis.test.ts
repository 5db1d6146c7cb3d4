/**
 * RedisBudget against the real shared Redis (keys under a random per-test prefix, deleted afterwards),
 * and against a private redis-server for the outage tests.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { BudgetUnavailableError, PermitLostError, RedisBudget, type Permit, type RedisBudgetOptions } from '../../src/budget/index.js';
import { InvalidOptionError } from '../../src/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { activeResources, grown } from '../support/handles.js';
import { requireService, SERVICES } from '../support/services.js';
import { PrivateRedis, freePort, privateRedisCheck } from './private-redis.js';

const redisCheck = await requireService('redis');
const privateCheck = privateRedisCheck();
const ADDRESS = { host: SERVICES.redis.host, port: SERVICES.redis.port };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('RedisBudget', { skip: redisCheck.skip, timeout: 60_000 }, () => {
  const admin = redisCheck.skip === false ? new Redis({ ...ADDRESS, lazyConnect: true }) : null;
  const prefixes: string[] = [];
  const budgets: RedisBudget[] = [];

  /** A budget on the shared Redis under this test's own key prefix. */
  function make(prefix: string, options: Partial<RedisBudgetOptions> = {}): RedisBudget {
    const budget = new RedisBudget({ redis: ADDRESS, key: 'remote', keyPrefix: prefix, limit: 1, permitTtlMs: 2000, recoveryGraceMs: 0, ...options });
    budgets.push(budget);
    return budget;
  }
  function prefix(): string {
    const p = `lg-test:${process.pid}:${Math.random().toString(36).slice(2)}:`;
    prefixes.push(p);
    return p;
  }
  const keyOf = (p: string, what: string): string => `${p}{remote}:${what}`;

  after(async () => {
    await Promise.all(budgets.map((b) => b.close()));
    if (admin !== null) {
      for (const p of prefixes) {
        const keys = await admin.keys(`${p}*`);
        if (keys.length > 0) await admin.del(...keys);
      }
      admin.disconnect();
    }
  });

  it('the limit holds with many concurrent acquirers in several budgets (as many processes would)', async () => {
    const p = prefix();
    const limit = 4;
    const holders = Array.from({ length: 5 }, () => make(p, { limit }));
    let current = 0;
    let most = 0;
    let served = 0;
    const task = async (budget: RedisBudget): Promise<void> => {
      const permit = await budget.acquire({ timeoutMs: 20_000 });
      current++;
      most = Math.max(most, current);
      assert.ok(current <= limit, `${current} permits held at once (limit ${limit})`);
      await sleep(2 + Math.random() * 10);
      current--;
      served++;
      permit.release();
    };
    await Promise.all(holders.flatMap((b) => Array.from({ length: 12 }, () => task(b))));
    assert.equal(served, 60);
    assert.ok(most <= limit);
    assert.ok(most >= 2, 'the acquirers never overlapped: the test proved nothing');
    await sleep(50);
    assert.equal(await admin?.zcard(keyOf(p, 'permits')), 0, 'every permit is back in Redis');
    assert.equal(await admin?.zcard(keyOf(p, 'queue')), 0, 'the line is empty');
    await Promise.all(holders.map((b) => b.close()));
  });

  it('measures permit expiry on the Redis server clock, whatever the client clock says', async () => {
    const p = prefix();
    // The fake clock is frozen at 1,000,000 ms: nothing like the server's epoch time.
    const budget = make(p, { clock: new FakeClock(), permitTtlMs: 5000 });
    const permit = await budget.acquire();
    assert.ok(admin !== null);
    const [score, time] = await Promise.all([admin.zscore(keyOf(p, 'permits'), permit.id), admin.time()]);
    const serverNow = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const remaining = Number(score) - serverNow;
    assert.ok(remaining > 4500 && remaining <= 5000, `permit expires ${remaining} ms from the server's now (ttl 5000)`);
    permit.release();
    await budget.close();
  });

  it("reclaims a dead holder's permits once they expire, and a waiter gets them without polling", async () => {
    const p = prefix();
    const ttl = 1000;
    // A holder whose timers never fire (a frozen or dead process): it never refreshes.
    const frozenClock = new FakeClock();
    const dead = make(p, { limit: 2, permitTtlMs: ttl, clock: frozenClock });
    const [a, b] = await Promise.all([dead.acquire(), dead.acquire()]);
    const waiter = make(p, { limit: 2, permitTtlMs: ttl, recheckIntervalMs: 60_000 });
    const started = Date.now();
    const permit = await waiter.acquire({ timeoutMs: 10_000 });
    const waited = Date.now() - started;
    assert.ok(waited >= ttl * 0.7, `granted after ${waited} ms: before the dead holder's permits could expire (ttl ${ttl})`);
    assert.ok(waited <= ttl + 1500, `granted only after ${waited} ms (ttl ${ttl})`);
    assert.ok(waiter.stats().commands.try <= 3, `${waiter.stats().commands.try} grant attempts: the waiter polled`);
    // The dead holder's two permits were granted a few ms apart, so the second may expire a little after
    // the first (whose expiry served the waiter); past both expiries, the next script reclaims it.
    await sleep(300);
    const usage = await waiter.usage();
    const ids = await admin?.zrange(keyOf(p, 'permits'), '0', '-1');
    assert.deepEqual(ids, [permit.id], "the dead holder's permits are gone from Redis");
    assert.equal(usage.held, 1);
    assert.equal(a?.lost.aborted, false, 'the frozen holder has not looked yet');
    assert.equal(b?.lost.aborted, false);
    permit.release();
    await dead.close();
  });

  it('wakes a waiter by pub/sub when a permit is released: served at once, with no polling while it waited', async () => {
    const p = prefix();
    const holder = make(p, { permitTtlMs: 30_000 });
    const waiter = make(p, { permitTtlMs: 30_000, recheckIntervalMs: 60_000 });
    const held = await holder.acquire();
    let granted: Permit | null = null;
    const acquiring = waiter.acquire({ timeoutMs: 20_000 }).then((permit) => { granted = permit; return permit; });
    await sleep(500);
    assert.equal(granted, null);
    assert.equal(waiter.stats().commands.try, 1, 'the waiter asked Redis more than once while nothing changed');
    const releasedAt = Date.now();
    held.release();
    const permit = await acquiring;
    const latency = Date.now() - releasedAt;
    // Without the wake-up it would have waited for the 30 s permit expiry or the 60 s re-check.
    assert.ok(latency < 5000, `served ${latency} ms after the release`);
    assert.equal(waiter.stats().commands.try, 2, 'one attempt to queue, one when woken');
    assert.ok(waiter.stats().wakeups >= 1);
    permit.release();
  });

  it('serves waiters from different processes in arrival order', async () => {
    const p = prefix();
    const holder = make(p);
    const first = await holder.acquire();
    const waiters = Array.from({ length: 4 }, () => make(p, { recheckIntervalMs: 60_000 }));
    const order: number[] = [];
    const done: Promise<void>[] = [];
    for (const [i, budget] of waiters.entries()) {
      done.push(budget.acquire({ timeoutMs: 20_000 }).then(async (permit) => {
        order.push(i);
        await sleep(5);
        permit.release();
      }));
      // Queued in Redis before the next one arrives.
      const queued = i + 1;
      for (let n = 0; n < 200 && (await admin?.zcard(keyOf(p, 'queue'))) !== queued; n++) await sleep(5);
    }
    first.release();
    await Promise.all(done);
    assert.deepEqual(order, [0, 1, 2, 3]);
  });

  it("a dead waiter's ticket ages out instead of blocking the line", async () => {
    const p = prefix();
    const ttl = 1000;
    const budget = make(p, { permitTtlMs: ttl, recheckIntervalMs: 60_000 });
    assert.ok(admin !== null);
    // A ticket left at the head of the line by a process that died, expiring one ttl from now.
    const time = await admin.time();
    const serverNow = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    await admin.zadd(keyOf(p, 'queue'), 0, 'dead-process:1');
    await admin.zadd(keyOf(p, 'tickets'), serverNow + ttl, 'dead-process:1');
    const started = Date.now();
    const permit = await budget.acquire({ timeoutMs: 10_000 });
    const waited = Date.now() - started;
    assert.ok(waited >= ttl * 0.7, `served after ${waited} ms, before the dead ticket expired`);
    assert.ok(waited <= ttl + 1500, `served only after ${waited} ms (ticket ttl ${ttl})`);
    assert.equal(await admin.zcard(keyOf(p, 'queue')), 0);
    permit.release();
  });

  it('rejects with LG_BUDGET_TIMEOUT naming the key, the limit, and what the fleet holds and waits for', async () => {
    const p = prefix();
    const holder = make(p, { limit: 2 });
    const other = make(p, { limit: 2 });
    const held = await Promise.all([holder.acquire(), holder.acquire()]);
    await assert.rejects(other.acquire({ timeoutMs: 200 }), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.equal((error as { code?: string }).code, 'LG_BUDGET_TIMEOUT');
      assert.match(error.message, /^budget "remote" exhausted: no permit within 2\d\d ms \(key="remote" limit=2 heldHere=0 heldInFleet=2 waitingInFleet=1; fleet figures read \d+ ms ago\)$/);
      return true;
    });
    // The figures came with the round trips made anyway: the holder's grant, the waiter's place in line.
    const seen = other.stats().fleet;
    assert.equal(seen.held, 2);
    assert.ok(seen.ageMs !== null && seen.ageMs >= 0);
    assert.equal(holder.stats().fleet.held, 2);
    const before = holder.stats().commands;
    for (const permit of held) permit.release();
    await sleep(50);
    assert.deepEqual(holder.stats().fleet.held, 0, 'the release round trip brought the new figures back');
    assert.equal(holder.stats().commands.usage, before.usage, 'no usage round trip was needed');
    await sleep(50);
    assert.equal(await admin?.zcard(keyOf(p, 'queue')), 0, 'the timed-out ticket left the line');
  });

  it('a new master (its replication id differs from the one recorded) grants nothing new for one grace, while a holder keeps and refreshes its permit', async () => {
    const p = prefix();
    const grace = 1500;
    const holder = make(p, { limit: 2, recoveryGraceMs: grace });
    const other = make(p, { limit: 2, recoveryGraceMs: grace });
    const held = await holder.acquire();
    assert.ok(admin !== null);
    // What a failover looks like to the scripts: the recorded replication id is not the server's.
    const replid = /master_replid:(\w+)/.exec(await admin.info('replication'))?.[1];
    assert.equal(await admin.get(keyOf(p, 'master')), replid, 'the scripts record the master they run on');
    await admin.set(keyOf(p, 'master'), 'a-master-before-the-failover');
    const started = Date.now();
    const permit = await other.acquire({ timeoutMs: 10_000 });
    const waited = Date.now() - started;
    assert.ok(waited >= grace * 0.8, `a permit was granted ${waited} ms after the new master was seen (grace ${grace})`);
    assert.ok(waited <= grace + 1500, `granted only after ${waited} ms`);
    assert.equal(held.lost.aborted, false, 'the live holder lost its permit across the "failover"');
    assert.equal(await admin.get(keyOf(p, 'master')), replid);
    permit.release();
    held.release();
  });

  it('fails fast with LG_BUDGET_UNAVAILABLE naming the address when Redis is unreachable, and leaves no handle', async () => {
    const before = activeResources();
    const port = await freePort();
    const budget = new RedisBudget({ redis: `redis://127.0.0.1:${port}`, key: 'remote', limit: 1, permitTtlMs: 2000, commandTimeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(budget.acquire({ timeoutMs: 10_000 }), (error: unknown) => {
      assert.ok(error instanceof BudgetUnavailableError);
      assert.equal(error.code, 'LG_BUDGET_UNAVAILABLE');
      assert.equal(error.address, `127.0.0.1:${port}`);
      assert.match(error.message, new RegExp(`budget "remote": cannot acquire a permit \\(connection \\w+\\): Redis at 127\\.0\\.0\\.1:${port} is unavailable \\(.*ECONNREFUSED`));
      assert.ok(error.cause instanceof Error);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'it waited for the acquire deadline instead of failing fast');
    assert.equal(budget.stats().unavailable, 1);
    await budget.close();
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('a holder that cannot refresh reports its permits lost before Redis could expire them; works again after a restart', { skip: privateCheck.skip }, async () => {
    const server = await PrivateRedis.start();
    const ttl = 1500;
    const budget = new RedisBudget({ redis: { host: '127.0.0.1', port: server.port }, key: 'remote', limit: 2, permitTtlMs: ttl, commandTimeoutMs: 200, recoveryGraceMs: 0 });
    try {
      const permit = await budget.acquire();
      await sleep(ttl); // a couple of refreshes keep it alive meanwhile
      assert.equal(permit.lost.aborted, false, 'lost while Redis was up');
      const lost = new Promise<unknown>((resolve) => { permit.lost.addEventListener('abort', () => { resolve(permit.lost.reason); }); });
      await server.stop();
      const stoppedAt = Date.now();
      const reason = await lost;
      const after = Date.now() - stoppedAt;
      // The last refresh was sent before the stop, so the loss comes within ttl - margin of it.
      assert.ok(after < ttl, `reported lost ${after} ms after Redis stopped (ttl ${ttl})`);
      assert.ok(reason instanceof PermitLostError);
      assert.equal(reason.code, 'LG_BUDGET_PERMIT_LOST');
      assert.match(reason.message, new RegExp(`could not be refreshed in time \\(Redis at 127\\.0\\.0\\.1:${server.port}`));
      await assert.rejects(budget.acquire({ timeoutMs: 5000 }), { code: 'LG_BUDGET_UNAVAILABLE' });
      await server.start();
      let again: Permit | null = null;
      for (let i = 0; i < 100 && again === null; i++) {
        again = await budget.acquire({ timeoutMs: 2000 }).catch(async () => { await sleep(50); return null; });
      }
      assert.ok(again !== null, 'no permit after Redis came back');
      assert.equal(budget.stats().lost, 1);
      again.release();
    } finally {
      await budget.close();
      await server.stop();
    }
  });

  it('close() while its subscriber reconnects closes it, and leaves no unhandled rejection', { skip: privateCheck.skip }, async () => {
    const server = await PrivateRedis.start();
    // The budget duplicates a client it is given: keeping the duplicates shows the test its subscriber.
    const client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
    const duplicates: Redis[] = [];
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (override) => {
      const made = duplicate(override);
      duplicates.push(made);
      return made;
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
    process.on('unhandledRejection', onUnhandled);
    const budget = new RedisBudget({ redis: client, key: 'remote', limit: 1, recoveryGraceMs: 0 });
    try {
      (await budget.acquire()).release();
      const subscriber = duplicates.find((d) => d.options.enableOfflineQueue === true);
      assert.ok(subscriber !== undefined, 'no subscriber connection among the duplicates');
      if (subscriber.status !== 'ready') await once(subscriber, 'ready');
      await server.stop();
      for (let i = 0; i < 200 && subscriber.status === 'ready'; i++) await sleep(10);
      // Closed as the subscriber connects again, before its ready check is answered. A bare ioredis
      // connection disconnected there answers the check, becomes ready and stays open. The listener goes on
      // before the restart: a reconnect attempt can land while start() still waits for the server's first
      // answer, and a listener added after that waited for a 'connect' already gone (the test hung to its
      // suite's timeout once in CI under load).
      const closedAtConnect = new Promise<void>((resolve, reject) => {
        subscriber.once('connect', () => { budget.close().then(resolve, reject); });
      });
      await server.start();
      await closedAtConnect;
      assert.equal(subscriber.status, 'end', 'the subscriber outlived close()');
      await server.stop();
      await sleep(200);
      assert.deepEqual(unhandled.map(String), []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await budget.close();
      client.disconnect();
      await server.stop();
    }
  });

  it('close() gives back every permit, rejects waiters, and leaves no timer or socket behind', async () => {
    const before = activeResources();
    const p = prefix();
    const budget = new RedisBudget({ redis: ADDRESS, key: 'remote', keyPrefix: p, limit: 3, permitTtlMs: 2000, recoveryGraceMs: 0 });
    const held = await Promise.all([budget.acquire(), budget.acquire(), budget.acquire()]);
    const waiting = budget.acquire({ timeoutMs: 10_000 }).then(() => null, (error: unknown) => error);
    await budget.close();
    assert.equal((await waiting as { code?: string } | null)?.code, 'LG_BUDGET_CLOSED');
    assert.ok(held.every((permit) => permit.lost.aborted));
    assert.equal(await admin?.zcard(keyOf(p, 'permits')), 0);
    await assert.rejects(budget.acquire(), { code: 'LG_BUDGET_CLOSED' });
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('refreshes all of its permits in one round trip per interval, keeping them alive past their ttl', async () => {
    const p = prefix();
    const ttl = 900; // refresh every 300 ms
    const budget = make(p, { limit: 20, permitTtlMs: ttl });
    const permits = await Promise.all(Array.from({ length: 20 }, () => budget.acquire()));
    assert.ok(budget.stats().commands.try <= 3, `${budget.stats().commands.try} round trips for 20 concurrent acquires: not batched`);
    const before = budget.stats().commands.refresh;
    await sleep(ttl * 2);
    const refreshes = budget.stats().commands.refresh - before;
    assert.ok(refreshes >= 3 && refreshes <= 8, `${refreshes} refresh round trips in ${ttl * 2} ms for 20 permits (interval ${ttl / 3} ms)`);
    assert.ok(permits.every((permit) => !permit.lost.aborted), 'a permit was lost although Redis was up');
    assert.equal(await admin?.zcard(keyOf(p, 'permits')), 20, 'permits expired in Redis although refreshed');
    for (const permit of permits) permit.release();
  });

  it('takes an ioredis client: duplicates it for its own connections and leaves it open on close', async () => {
    const p = prefix();
    const client = new Redis({ ...ADDRESS });
    try {
      const budget = new RedisBudget({ redis: client, key: 'remote', keyPrefix: p, limit: 1, recoveryGraceMs: 0 });
      assert.equal(budget.address, `${ADDRESS.host}:${ADDRESS.port}`);
      const permit = await budget.acquire();
      assert.equal(await client.zcard(keyOf(p, 'permits')), 1);
      permit.release();
      await budget.close();
      assert.equal(await client.ping(), 'PONG', "the caller's client was closed");
    } finally {
      client.disconnect();
    }
  });

  it('validates its options, naming the option, what was expected and what was given', () => {
    const base = { redis: ADDRESS, key: 'k', limit: 1 };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, limt: 1 }, /unknown option "limt" for RedisBudget; known options: acquireTimeoutMs, clock, commandTimeoutMs, fallback, key, keyPrefix, limit, lossMarginMs, onFallback, permitTtlMs, recheckIntervalMs, recoveryGraceMs, redis, refreshIntervalMs/],
      [{ redis: ADDRESS, limit: 1 }, /"key": required/],
      [{ redis: ADDRESS, key: 'k' }, /"limit": required/],
      [{ ...base, limit: 0 }, /"limit": expected an integer >= 1, got number 0/],
      [{ ...base, redis: 42 }, /"redis": expected a redis:\/\/ URL, ioredis options or an ioredis client, got number 42/],
      [{ ...base, redis: 'http://x' }, /"redis": expected a redis:\/\/ or rediss:\/\/ URL, got the string "http:\/\/x"/],
      [{ ...base, permitTtlMs: 50 }, /"permitTtlMs": expected an integer >= 100, got number 50/],
      [{ ...base, permitTtlMs: 3000, refreshIntervalMs: 2500 }, /"refreshIntervalMs": a refresh must land before a permit is reported lost, so refreshIntervalMs \+ commandTimeoutMs \(2500 \+ 750\) must be < permitTtlMs - lossMarginMs \(3000 - 500\)/],
      [{ ...base, permitTtlMs: 3000, lossMarginMs: 3000 }, /"lossMarginMs": must be < permitTtlMs \(3000\), got number 3000/],
      [{ ...base, refreshIntervalMs: '10s' }, /"refreshIntervalMs": expected a number >= 1, got the string "10s"/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => new RedisBudget(options as unknown as RedisBudgetOptions), (error: unknown) => error instanceof InvalidOptionError && message.test(error.message), `no match for ${message}`);
    }
  });
});
