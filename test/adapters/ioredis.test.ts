import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createIoredisPool, ioredisFactory } from '../../src/adapters/ioredis.js';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService } from '../support/services.js';
import { assertDestroyedLeaseReplaced, assertIdleKillsEvicted, assertNoHandlesLeft, assertRecovered, createContext, uniqueName, waitFor, withPool } from './helpers.js';

const service = await requireService('redis');
const { host, port } = SERVICES.redis;
const base = { host, port };

describe('lifeguard/ioredis options', () => {
  it('rejects unknown keys and the reconnection options it manages', () => {
    assert.throws(() => createIoredisPool({ redis: {} } as never), /unknown option "redis" for createIoredisPool; known options: .*connectTimeoutMs, connection, /);
    assert.throws(() => ioredisFactory({ reset: 'rollback' } as never), /unknown option "reset" for ioredisFactory/);
    assert.throws(() => ioredisFactory({ connection: { retryStrategy: () => 100 } }), (e: Error & { option?: string }) => {
      assert.equal(e.option, 'connection.retryStrategy');
      assert.match(e.message, /lifeguard\/ioredis manages it: reconnection is disabled so that a dead connection is a dead resource, which the pool replaces; got a function/);
      return true;
    });
    for (const key of ['lazyConnect', 'maxRetriesPerRequest', 'enableOfflineQueue', 'autoResubscribe', 'reconnectOnError', 'connectTimeout']) {
      assert.throws(() => ioredisFactory({ connection: { [key]: 1 } }), new RegExp(`invalid option "connection\\.${key}"`));
    }
  });
});

describe('lifeguard/ioredis against Redis', { skip: service.skip }, () => {
  const admin = new Redis({ ...base, lazyConnect: true });
  before(async () => { await admin.connect(); });
  after(async () => { await admin.quit(); });

  /** Ids of this test's own connections, found by their CLIENT SETNAME. */
  async function clientIds(name: string): Promise<number[]> {
    const list = String(await admin.client('LIST', 'TYPE', 'NORMAL'));
    return list.split('\n').filter((line) => line.includes(` name=${name} `)).map((line) => Number(/\bid=(\d+)/.exec(line)?.[1])).sort((a, b) => a - b);
  }
  async function kill(ids: readonly number[]): Promise<void> {
    for (const id of ids) assert.equal(await admin.client('KILL', 'ID', String(id)), 1);
  }

  it('validates with PING, exposes the socket, and a killed connection stays dead (no reconnection)', async () => {
    const name = uniqueName('lg_redis_validate');
    const handles = activeResources();
    const factory = ioredisFactory({ connection: { ...base, connectionName: name } });
    const context = createContext();
    const redis = await factory.create(context);
    try {
      assert.equal(await factory.validate?.(redis, { signal: new AbortController().signal }), true);
      assert.equal(factory.socket?.(redis)?.remotePort, port);
      await kill(await clientIds(name));
      await waitFor(() => context.invalidated.length === 1, 5000, 'the kill to be reported');
      const [reason] = context.invalidated as (Error & { code?: string })[];
      assert.ok(reason);
      assert.equal(reason.code, 'LG_CONNECTION_LOST');
      assert.match(reason.message, new RegExp(`ioredis connection to 127\\.0\\.0\\.1:${port} \\(name ${name}\\) `));
      await assert.rejects(Promise.resolve(factory.validate?.(redis, { signal: new AbortController().signal })), { code: 'LG_CONNECTION_LOST' });
      await waitFor(() => redis.status === 'end', 2000, 'ioredis to give up on the connection');
      assert.deepEqual(await clientIds(name), [], 'ioredis reconnected on its own');
    } finally {
      await factory.destroy(redis);
    }
    await assertNoHandlesLeft(handles, 'a destroyed connection');
  });

  it('reset: leaves MULTI, drops WATCHes and subscriptions, selects the configured db again', async () => {
    const key = uniqueName('lg:reset');
    await withPool(() => createIoredisPool({ connection: { ...base, db: 3 }, max: 1 }), async (pool) => {
      const conn = await pool.use(async (redis) => {
        await redis.multi({ pipeline: false });
        assert.equal(await redis.set(key, 'queued'), 'QUEUED');
        return redis;
      });
      await pool.use(async (redis) => {
        assert.equal(redis, conn, 'the same connection, cleaned rather than replaced');
        assert.equal(await redis.get(key), null, 'the queued SET was discarded, not executed');
        assert.equal(await redis.set(key, 'v1'), 'OK', 'not in MULTI any more');
        await redis.watch(key);
      });
      // A WATCH left behind would make this transaction fail after the key changes.
      await pool.use(async (redis) => {
        await admin.select(3);
        await admin.set(key, 'changed by someone else');
        await admin.select(0);
        assert.deepEqual(await redis.multi().set(key, 'v2').exec(), [[null, 'OK']]);
        await redis.select(5);
        await redis.subscribe(`${key}:channel`);
        await redis.psubscribe(`${key}:*`);
        assert.ok(redis.condition?.subscriber, 'subscribed');
      });
      await pool.use(async (redis) => {
        assert.equal(redis, conn);
        assert.equal(redis.mode, 'normal');
        assert.equal(redis.condition?.subscriber, false, 'no subscription left');
        assert.equal(await redis.get(key), 'v2', 'back on db 3');
        assert.equal(/\bdb=(\d+)/.exec(await redis.client('INFO'))?.[1], '3');
        await redis.del(key);
      });
      assert.equal(pool.stats().created, 1);
      assert.equal(pool.stats().destroyed.error, 0);
    });
  });

  it('idle connections killed by the server are evicted at once; the next 20 acquires all succeed', async () => {
    const name = uniqueName('lg_redis_idle');
    await withPool(() => createIoredisPool({ connection: { ...base, connectionName: name }, max: 4, min: 4, name: 'redis-kill-idle' }), (pool) => assertIdleKillsEvicted(
      pool,
      async () => {
        await waitFor(async () => (await clientIds(name)).length === 4, 5000, '4 connections');
        const ids = await clientIds(name);
        await kill(ids);
        return ids;
      },
      (redis) => redis.client('ID'),
    ));
  });

  it('connections killed while in use: exactly their 2 commands fail; the other 2 and the next 20 acquires succeed', async () => {
    const name = uniqueName('lg_redis_busy');
    const key = uniqueName('lg:busy');
    await withPool(() => createIoredisPool({ connection: { ...base, connectionName: name }, max: 4, name: 'redis-kill-busy' }), async (pool) => {
      const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
      const ids = await Promise.all(leases.map((l) => l.resource.client('ID')));
      const victims = new Set(leases.slice(0, 2).map((l) => l.resource));
      // Blocking pops on a key nobody pushes to: 30 s for the victims, 0.3 s for the survivors.
      const outcomes = Promise.allSettled(leases.map((l, i) => l.resource.blpop(key, i < 2 ? 30 : 0.3)));
      await waitFor(async () => {
        const list = String(await admin.client('LIST', 'ID', ...ids.map(String)));
        return list.split('\n').filter((line) => line.includes('cmd=blpop')).length === 4;
      }, 5000, 'the 4 BLPOPs to block');
      await kill(ids.slice(0, 2));
      const settled = await outcomes;
      assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'fulfilled', 'fulfilled']);
      for (const lease of leases) lease.release();

      await assertRecovered(pool, victims, (redis) => redis.ping());
    });
  });

  it('a lease reported broken with destroy() is never lent again', () => withPool(
    () => createIoredisPool({ connection: base, max: 1 }),
    (pool) => assertDestroyedLeaseReplaced(pool, (redis) => redis.ping(), port),
  ));
});
