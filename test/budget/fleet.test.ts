/**
 * Incident 2 with real processes: a server that answers 401 past 10 concurrent connections, and four
 * worker processes, each with its own Lifeguard pool (max 8), sharing one RedisBudget of 10.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startCappedServer, type CappedServer } from '../support/capped-server.js';
import type { Progress, WorkerConfig } from '../support/budget-worker.js';
import { forkWorker, killWorkers, sleep, until, type FleetWorker } from '../support/fleet-process.js';
import { requireService, SERVICES } from '../support/services.js';
import { PrivateCluster, PrivateRedis, PrivateSentinelSet, privateRedisCheck, redisCli } from './private-redis.js';

const redisCheck = await requireService('redis');
const privateCheck = privateRedisCheck();
const WORKER = fileURLToPath(new URL('../support/budget-worker.js', import.meta.url));
const CAP = 10;
const TTL = 2000;

interface Worker extends FleetWorker<Progress> {
  readonly name: string;
}

function startWorker(config: WorkerConfig): Worker {
  const worker = forkWorker<Progress>(WORKER, config, { ok: 0, failed: 0, errors: {}, lastError: null, held: 0, holderId: null, poolSize: 0 }, ['--enable-source-maps']);
  return Object.assign(worker, { name: config.name });
}

function config(name: string, overrides: Partial<WorkerConfig>): WorkerConfig {
  return {
    name,
    serverPort: 0,
    redis: { host: SERVICES.redis.host, port: SERVICES.redis.port },
    budgetKey: 'fleet',
    keyPrefix: `lg-test:${process.pid}:${Math.random().toString(36).slice(2)}:`,
    limit: CAP,
    permitTtlMs: TTL,
    poolMax: 8,
    concurrency: 8,
    workMs: 10,
    acquireTimeoutMs: 20_000,
    maxLifetimeMs: 1000,
    maxRunMs: 30_000,
    ...overrides,
  };
}

async function stopAll(workers: readonly Worker[]): Promise<(Progress & { leftover: string[] })[]> {
  for (const w of workers) if (!w.exited) w.child.send('stop');
  const finals = await Promise.all(workers.map((w) => w.done));
  return finals.map((f, i) => {
    assert.ok(f !== null, `worker ${workers[i]?.name ?? i} exited without a final report`);
    return f;
  });
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
}

function okTotal(workers: readonly Worker[]): number {
  return workers.reduce((sum, w) => sum + w.progress.ok, 0);
}

describe('fleet budget: 4 processes, one Redis budget of 10, a server that answers 401 past 10', { skip: redisCheck.skip, timeout: 280_000 }, () => {
  let server: CappedServer | null = null;
  const redis = redisCheck.skip === false ? new Redis({ host: SERVICES.redis.host, port: SERVICES.redis.port, lazyConnect: true }) : null;
  const prefixes: string[] = [];

  afterEach(async () => {
    killWorkers();
    await server?.close();
    server = null;
  });
  after(async () => {
    if (redis !== null) {
      for (const prefix of prefixes) await deleteKeys(redis, prefix);
      redis.disconnect();
    }
  });

  it('control, incident 2 reproduced: without the budget the four pools overshoot the cap and requests fail with 401', async (t) => {
    server = await startCappedServer(CAP);
    const port = server.port;
    const workers = [0, 1, 2, 3].map((i) => startWorker(config(`control-${i}`, { serverPort: port, redis: null, requests: 80, workMs: 20 })));
    const finals = await stopAllWhenDone(workers);
    assert.ok(server.maxSeen > CAP, `the server saw at most ${server.maxSeen} connections`);
    assert.ok(server.rejected > 0, 'the server answered no 401');
    const failures = finals.reduce((sum, f) => sum + (f.errors['HTTP_401'] ?? 0), 0);
    assert.ok(failures > 0, 'no request failed with 401');
    t.diagnostic(`without budget: server saw up to ${server.maxSeen} connections, ${failures} of 320 requests failed with 401`);
  });

  it('with the budget: the server never counts more than 10 connections and no request fails', async (t) => {
    const started = Date.now();
    server = await startCappedServer(CAP);
    const base = config('x', {});
    prefixes.push(base.keyPrefix);
    const port = server.port;
    const workers = [0, 1, 2, 3].map((i) => startWorker({ ...base, name: `shared-${i}`, serverPort: port, requests: 150, recoveryGraceMs: 0 }));
    const finals = await stopAllWhenDone(workers);
    for (const [i, f] of finals.entries()) {
      assert.deepEqual({ ok: f.ok, failed: f.failed, errors: f.errors }, { ok: 150, failed: 0, errors: {} }, `worker ${i}: ${f.lastError ?? ''}`);
      assert.deepEqual(f.leftover, [], `worker ${i} left handles behind after close()`);
    }
    assert.ok(server.maxSeen <= CAP, `the server counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
    assert.equal(server.rejected, 0);
    // More than one pool's max at once: the ten permits really were shared across processes.
    assert.ok(server.maxSeen > 8, `only ${server.maxSeen} connections at once: the processes did not share the budget`);
    assert.equal(await redis?.zcard(`${base.keyPrefix}{fleet}:permits`), 0, 'permits left in Redis after every worker closed');
    t.diagnostic(`with budget: 600 requests in ${Date.now() - started} ms (process start included), server saw at most ${server.maxSeen} connections, ${server.connections} in total`);
  });

  it('kill -9 of a worker holding permits: the others carry on, and its permits come back within the expiry', async (t) => {
    server = await startCappedServer(CAP);
    const base = config('x', {});
    prefixes.push(base.keyPrefix);
    const port = server.port;
    const permitsKey = `${base.keyPrefix}{fleet}:permits`;
    const workers = [0, 1, 2, 3].map((i) => startWorker({ ...base, name: `kill-${i}`, serverPort: port, recoveryGraceMs: 0 }));
    await until(() => workers.every((w) => w.progress.ok >= 20), 20_000, 'every worker has served 20 requests');
    assert.ok(redis !== null);
    // The victim: the worker holding the most permits in Redis right now.
    const ids = await redis.zrange(permitsKey, '0', '-1');
    const victim = [...workers].sort((a, b) => ids.filter((id) => id.startsWith(`${b.progress.holderId ?? '-'}:`)).length - ids.filter((id) => id.startsWith(`${a.progress.holderId ?? '-'}:`)).length)[0]!;
    const prefix = `${victim.progress.holderId ?? '?'}:`;
    const victimPermits = ids.filter((id) => id.startsWith(prefix));
    assert.ok(victimPermits.length > 0, 'the victim holds no permit');
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    const survivors = workers.filter((w) => w !== victim);
    await until(async () => (await redis.zrange(permitsKey, '0', '-1')).every((id) => !id.startsWith(prefix)), TTL + 4000, "the dead worker's permits are reclaimed");
    const reclaimedAfter = Date.now() - killedAt;
    // Held until they expire (never handed out while the holder might be alive), then reclaimed.
    assert.ok(reclaimedAfter <= TTL + 2000, `permits came back ${reclaimedAfter} ms after the kill (permitTtlMs ${TTL})`);
    assert.ok(reclaimedAfter >= TTL / 3, `permits came back only ${reclaimedAfter} ms after the kill: before they could have expired`);
    t.diagnostic(`${victimPermits.length} permits of the killed worker reclaimed ${reclaimedAfter} ms after kill -9 (permitTtlMs ${TTL})`);
    const okAtReclaim = survivors.map((w) => w.progress.ok);
    await until(() => survivors.every((w, i) => w.progress.ok >= (okAtReclaim[i] ?? 0) + 30), 20_000, 'every survivor has served 30 more requests');
    const finals = await stopAll(survivors);
    for (const [i, f] of finals.entries()) assert.deepEqual({ failed: f.failed, errors: f.errors }, { failed: 0, errors: {} }, `survivor ${i}: ${f.lastError ?? ''}`);
    assert.ok(server.maxSeen <= CAP, `the server counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
    assert.equal(server.rejected, 0);
  });

  it('a private Redis stopped and restarted mid-run: clear errors while it is down, the cap holds, work resumes', { skip: privateCheck.skip }, async (t) => {
    server = await startCappedServer(CAP);
    const privateRedis = await PrivateRedis.start();
    try {
      const port = server.port;
      const base = config('x', { serverPort: port, redis: { host: '127.0.0.1', port: privateRedis.port }, acquireTimeoutMs: 1000 });
      const workers = [0, 1, 2, 3].map((i) => startWorker({ ...base, name: `restart-${i}` }));
      // The first use of the budget's keys starts a recovery grace of permitTtlMs: work starts after it.
      await until(() => workers.every((w) => w.progress.ok >= 20), 20_000, 'every worker has served 20 requests');

      // 1. A blip shorter than the permits' expiry: Redis comes back empty while the holders still hold
      //    their connections. The recovery grace keeps newcomers out until holders re-register.
      await privateRedis.stop();
      await sleep(300);
      await privateRedis.start();
      let okMark = okTotal(workers);
      await until(() => okTotal(workers) >= okMark + 200, 20_000, 'work resumed after the blip');

      // 2. A long outage: permits cannot be refreshed, are reported lost before they could expire, and
      //    their connections close; acquires fail with a clear error naming Redis.
      const errorsBefore = unavailableErrors(workers);
      await privateRedis.stop();
      await sleep(TTL + 1500);
      assert.ok(unavailableErrors(workers) > errorsBefore, `no LG_BUDGET_UNAVAILABLE error while Redis was down; errors: ${JSON.stringify(workers.map((w) => w.progress.errors))}`);
      assert.ok(server.current === 0, `${server.current} connections still open after every permit was lost`);
      t.diagnostic(`Redis down ${TTL + 1500} ms: ${unavailableErrors(workers) - errorsBefore} requests failed with LG_BUDGET_UNAVAILABLE as the cause; connections open at the end of the outage: ${server.current}`);
      okMark = okTotal(workers);
      await privateRedis.start();
      await until(() => workers.every((w) => w.progress.ok >= 0) && okTotal(workers) >= okMark + 200, 20_000, 'work resumed after the restart');

      const finals = await stopAll(workers);
      const allowed = /^LG_ACQUIRE_TIMEOUT(<-LG_BUDGET_(UNAVAILABLE|TIMEOUT))?$/;
      for (const [i, f] of finals.entries()) {
        for (const code of Object.keys(f.errors)) assert.match(code, allowed, `worker ${i} failed with ${code}: ${f.lastError ?? ''}`);
        assert.deepEqual(f.leftover, [], `worker ${i} left handles behind after close()`);
      }
      assert.ok(server.maxSeen <= CAP, `the server counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
      assert.equal(server.rejected, 0);
    } finally {
      await privateRedis.stop();
    }
  });

  it('on a real 3-master Redis Cluster, through an ioredis Cluster client: one slot for every key, no CROSSSLOT, the cap holds', { skip: privateCheck.skip }, async (t) => {
    server = await startCappedServer(CAP);
    const cluster = await PrivateCluster.start(3);
    try {
      const port = server.port;
      const base = config('x', { serverPort: port, redis: { cluster: cluster.ports.map((p) => ({ host: '127.0.0.1', port: p })) }, requests: 150, recoveryGraceMs: 0 });
      const workers = [0, 1, 2, 3].map((i) => startWorker({ ...base, name: `cluster-${i}` }));
      const finals = await stopAllWhenDone(workers);
      for (const [i, f] of finals.entries()) {
        assert.deepEqual({ ok: f.ok, failed: f.failed, errors: f.errors }, { ok: 150, failed: 0, errors: {} }, `worker ${i}: ${f.lastError ?? ''}`);
        assert.deepEqual(f.leftover, [], `worker ${i} left handles behind after close()`);
      }
      assert.ok(server.maxSeen <= CAP, `the server counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
      assert.ok(server.maxSeen > 8, `only ${server.maxSeen} connections at once: the processes did not share the budget`);
      assert.equal(server.rejected, 0);
      const names = ['permits', 'queue', 'tickets', 'seq', 'wake', 'fence', 'master'].map((k) => `${base.keyPrefix}{fleet}:${k}`);
      const slots = new Set(await Promise.all(names.map(async (name) => (await redisCli(cluster.ports[0] ?? 0, 'cluster', 'keyslot', name)).trim())));
      assert.equal(slots.size, 1, `the budget's keys span slots ${[...slots].join(', ')}`);
      t.diagnostic(`cluster of 3 masters: 600 requests, no error, server saw at most ${server.maxSeen} connections; every key in slot ${[...slots][0] ?? '?'}`);
    } finally {
      await cluster.stop();
    }
  });

  it('Sentinel (1 master, 1 replica, 3 sentinels): 4 processes under load, SENTINEL FAILOVER forced 5 times: the server never counts more than 10, work resumes after each', { skip: privateCheck.skip }, async (t) => {
    server = await startCappedServer(CAP);
    const set = await PrivateSentinelSet.start();
    try {
      const port = server.port;
      const base = config('x', { serverPort: port, redis: { sentinels: set.sentinels, name: PrivateSentinelSet.NAME }, acquireTimeoutMs: 3000, maxRunMs: 240_000 });
      const workers = [0, 1, 2, 3].map((i) => startWorker({ ...base, name: `sentinel-${i}` }));
      await until(() => workers.every((w) => w.progress.ok >= 20), 30_000, 'every worker has served 20 requests');
      const resumed: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { to } = await set.failover();
        const failedOverAt = Date.now();
        const mark = okTotal(workers);
        await until(() => okTotal(workers) >= mark + 100, 30_000, `work resumed after failover ${i + 1}`);
        resumed.push(Date.now() - failedOverAt);
        assert.ok(server.maxSeen <= CAP, `after failover ${i + 1}, the server had counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
        // The new master was recognised as new: the budget's key holds its replication id.
        const info = await redisCli(to, 'info', 'replication');
        const replid = /master_replid:(\w+)/.exec(info)?.[1];
        await until(async () => (await redisCli(to, 'get', `${base.keyPrefix}{fleet}:master`)).trim() === replid, 10_000, `the budget records the new master's replication id after failover ${i + 1} (${info.replace(/\r?\n/g, ' ')}; stored ${(await redisCli(to, 'get', `${base.keyPrefix}{fleet}:master`)).trim()})`);
      }
      const finals = await stopAll(workers);
      const errors: Record<string, number> = {};
      for (const [i, f] of finals.entries()) {
        for (const [code, n] of Object.entries(f.errors)) errors[code] = (errors[code] ?? 0) + n;
        assert.deepEqual(f.leftover, [], `worker ${i} left handles behind after close()`);
      }
      assert.ok(server.maxSeen <= CAP, `the server counted ${server.maxSeen} concurrent connections (cap ${CAP})`);
      assert.equal(server.rejected, 0, 'the server answered 401: the cap was exceeded');
      t.diagnostic(`5 forced failovers under load: server saw at most ${server.maxSeen} connections (cap ${CAP}), 0 answered 401; work resumed (100 more requests) ${resumed.join(', ')} ms after each failover completed (permitTtlMs ${TTL}); ${finals.reduce((n, f) => n + f.ok, 0)} requests served, failures by code: ${JSON.stringify(errors)}`);
    } finally {
      await set.stop();
    }
  });
});

function unavailableErrors(workers: readonly Worker[]): number {
  let n = 0;
  for (const w of workers) for (const [code, count] of Object.entries(w.progress.errors)) if (code.includes('LG_BUDGET_UNAVAILABLE')) n += count;
  return n;
}

async function stopAllWhenDone(workers: readonly Worker[]): Promise<(Progress & { leftover: string[] })[]> {
  const finals = await Promise.all(workers.map((w) => w.done));
  return finals.map((f, i) => {
    assert.ok(f !== null, `worker ${workers[i]?.name ?? i} exited without a final report`);
    return f;
  });
}
