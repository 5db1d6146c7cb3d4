import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIoredisPool, ioredisFactory } from '../../src/adapters/ioredis.js';
import { createMysql2Pool, mysql2Factory } from '../../src/adapters/mysql2.js';
import { createPgPool, pgFactory } from '../../src/adapters/pg.js';
import { Pool as PgDropIn } from '../../src/adapters/pg.js';
import { createPool as createMysqlDropIn } from '../../src/adapters/mysql2-pool.js';
import type { Pool } from '../../src/pool/pool.js';
import { SERVICES, requireService } from '../support/services.js';

const postgres = await requireService('postgres');
const mariadb = await requireService('mariadb');
const redis = await requireService('redis');

/**
 * Acquires from a pool whose creates fail for good: the acquire must reject with LG_CREATE_FAILED and the
 * driver's error as cause, at once rather than at acquireTimeoutMs (which is set long enough that a
 * timeout would give LG_ACQUIRE_TIMEOUT instead).
 */
async function assertFailsFast<T>(pool: Pool<T>, cause: (error: { code?: unknown; errno?: unknown; message?: unknown }) => boolean): Promise<void> {
  try {
    await assert.rejects(pool.acquire(), (e: Error & { code?: string; cause?: unknown }) => {
      assert.equal(e.code, 'LG_CREATE_FAILED', `${e.code ?? ''}: ${e.message}`);
      assert.ok(cause(e.cause as { code?: unknown }), `cause: ${String((e.cause as Error | undefined)?.message)}`);
      return true;
    });
    // A second acquire, with the error known, fails at once too.
    await assert.rejects(pool.acquire(), { code: 'LG_CREATE_FAILED' });
  } finally {
    await pool.destroy();
  }
}

const slow = { acquireTimeoutMs: 20_000 };

describe('adapters: permanent create errors fail waiting acquires at once (adapters_permanent_create_errors_retried_until_timeout)', () => {
  it('PostgreSQL: unknown database (3D000), unknown role (28000)', { skip: postgres.skip }, async () => {
    const { host, port, user } = SERVICES.postgres;
    await assertFailsFast(createPgPool({ ...slow, connection: { host, port, user, database: 'lifeguard_no_such_db' } }), (e) => e.code === '3D000');
    await assertFailsFast(createPgPool({ ...slow, connection: { host, port, user: 'lifeguard_no_such_role', database: 'test' } }), (e) => e.code === '28000');
  });

  it('MariaDB: wrong password (1045), unknown database (1049)', { skip: mariadb.skip }, async () => {
    const { host, port, user, database } = SERVICES.mariadb;
    await assertFailsFast(createMysql2Pool({ ...slow, connection: { host, port, user, database, password: 'lifeguard-wrong' } }), (e) => e.errno === 1045);
    await assertFailsFast(createMysql2Pool({ ...slow, connection: { host, port, user, database: 'lifeguard_no_such_db' } }), (e) => e.errno === 1049);
  });

  it('Redis: WRONGPASS (an unknown ACL user)', { skip: redis.skip }, async () => {
    const { host, port } = SERVICES.redis;
    await assertFailsFast(createIoredisPool({ ...slow, connection: { host, port, username: 'lifeguard-nobody', password: 'x' } }), (e) => typeof e.message === 'string' && e.message.startsWith('WRONGPASS'));
  });

  it('the drop-ins: every waiting pg.Pool connect() fails with the driver error', { skip: postgres.skip }, async () => {
    const { host, port, user } = SERVICES.postgres;
    const pool = new PgDropIn({ host, port, user, database: 'lifeguard_no_such_db', max: 1 });
    try {
      const results = await Promise.allSettled([pool.connect(), pool.connect(), pool.connect()]);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.equal((result.reason as { code?: string }).code, '3D000');
      }
    } finally {
      await pool.end();
    }
  });
});

describe('adapters: the connect deadline is a duration a timer can keep (adapters_connect_timeout_above_2_31_fires_after_1ms)', () => {
  it('connectTimeoutMs above 2^31-1 is refused at construction, naming the option and the maximum; Infinity stays "no deadline"', () => {
    const tooLong = 2 ** 31;
    for (const make of [() => pgFactory({ connectTimeoutMs: tooLong }), () => mysql2Factory({ connectTimeoutMs: tooLong }), () => ioredisFactory({ connectTimeoutMs: tooLong }),
      () => createPgPool({ connectTimeoutMs: tooLong }), () => createMysql2Pool({ connectTimeoutMs: tooLong }), () => createIoredisPool({ connectTimeoutMs: tooLong })]) {
      assert.throws(make, (e: Error & { code?: string; option?: string }) => {
        assert.equal(e.code, 'LG_INVALID_OPTION');
        assert.equal(e.option, 'connectTimeoutMs');
        assert.match(e.message, /invalid option "connectTimeoutMs": expected at most 2147483647, got number 2147483648/);
        return true;
      });
    }
    assert.doesNotThrow(() => pgFactory({ connectTimeoutMs: Infinity }));
    assert.doesNotThrow(() => ioredisFactory({ connectTimeoutMs: 2 ** 31 - 1 }));
  });

  it('the drop-ins: pg.Pool connectionTimeoutMillis and mysql2 connectTimeout above 2^31-1 are refused by name', () => {
    assert.throws(() => new PgDropIn({ connectionTimeoutMillis: 2 ** 31 }), (e: Error & { option?: string }) => e.option === 'connectionTimeoutMillis' && /at most 2147483647/.test(e.message));
    assert.throws(() => createMysqlDropIn({ connectTimeout: 2 ** 31 }), (e: Error & { option?: string }) => e.option === 'connectTimeout' && /at most 2147483647/.test(e.message));
  });
});

describe('adapters: the mysql2 drop-in passes a permanent create error to each caller', { skip: mariadb.skip }, () => {
  it('every waiting getConnection() gets the driver error (1045)', async () => {
    const { host, port, user, database } = SERVICES.mariadb;
    const pool = createMysqlDropIn({ host, port, user, database, password: 'lifeguard-wrong', connectionLimit: 1 }).promise();
    try {
      const results = await Promise.allSettled([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.equal((result.reason as { errno?: number }).errno, 1045);
      }
    } finally {
      await pool.end();
    }
  });
});
