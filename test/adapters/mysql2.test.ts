import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { createMysql2Pool, mysql2Factory } from '../../src/adapters/mysql2.js';
import type { Pool } from '../../src/pool/pool.js';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService } from '../support/services.js';
import { assertDestroyedLeaseReplaced, assertIdleKillsEvicted, assertNoHandlesLeft, assertRecovered, createContext, uniqueName, waitFor, withPool } from './helpers.js';

const service = await requireService('mariadb');
const { host, port, user, database } = SERVICES.mariadb;
const base = { host, port, user, database };

async function one<T>(conn: Connection, sql: string, values: unknown[] = []): Promise<T> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, values);
  return rows[0] as T;
}

describe('lifeguard/mysql2 options', () => {
  it('rejects unknown keys and the driver options it manages', () => {
    assert.throws(() => createMysql2Pool({ conection: {} } as never), /unknown option "conection" for createMysql2Pool; known options: .*connectTimeoutMs.*reset/);
    assert.throws(() => mysql2Factory({ min: 1 } as never), /unknown option "min" for mysql2Factory/);
    assert.throws(() => mysql2Factory({ connection: { connectTimeout: 5 } }), /invalid option "connection.connectTimeout": lifeguard\/mysql2 manages it: use connectTimeoutMs; got number 5/);
    assert.throws(() => mysql2Factory({ reset: 'discard' as never }), /invalid option "reset": expected one of "connection", "rollback", got the string "discard"/);
    assert.throws(() => mysql2Factory({ connectTimeoutMs: -1 }), /invalid option "connectTimeoutMs"/);
  });
});

describe('lifeguard/mysql2 against MariaDB', { skip: service.skip }, () => {
  let admin: Connection;
  before(async () => { admin = await mysql.createConnection(base); });
  after(async () => { await admin.end(); });

  /** Kills this test's own connections, by their thread ids. */
  async function kill(threadIds: readonly number[]): Promise<void> {
    for (const id of threadIds) await admin.query('KILL CONNECTION ?', [id]);
  }
  /** Records the thread id of every connection the pool creates. */
  function threadIds(pool: Pool<Connection>): number[] {
    const ids: number[] = [];
    pool.on('create', (e) => { ids.push(e.resource.threadId); });
    return ids;
  }

  it('validates with COM_PING, exposes the socket, and fails validation of a killed connection', async () => {
    const handles = activeResources();
    const factory = mysql2Factory({ connection: base });
    const context = createContext();
    const conn = await factory.create(context);
    try {
      assert.equal(await factory.validate?.(conn, { signal: new AbortController().signal }), true);
      const socket = factory.socket?.(conn);
      assert.ok(socket);
      assert.equal(socket.remotePort, port);
      await kill([conn.threadId]);
      await waitFor(() => context.invalidated.length === 1, 5000, 'the kill to be reported');
      const [reason] = context.invalidated as (Error & { code?: string })[];
      assert.ok(reason);
      assert.equal(reason.code, 'LG_CONNECTION_LOST');
      assert.match(reason.message, new RegExp(`mysql2 connection to 127\\.0\\.0\\.1:${port} \\(thread id ${conn.threadId}\\) `));
      await assert.rejects(Promise.resolve(factory.validate?.(conn, { signal: new AbortController().signal })), { code: 'LG_CONNECTION_LOST' });
    } finally {
      await factory.destroy(conn);
    }
    assert.equal(context.invalidated.length, 1);
    await assertNoHandlesLeft(handles, 'a destroyed connection');
  });

  for (const reset of ['connection', 'rollback'] as const) {
    it(`reset '${reset}' rolls back an open transaction${reset === 'connection' ? ' and clears session state' : ', keeping session state'}`, async () => {
      const table = uniqueName('lg_my_reset');
      await admin.query(`CREATE TABLE ${table} (id int) ENGINE=InnoDB`);
      try {
        await withPool(() => createMysql2Pool({ connection: base, max: 1, reset }), async (pool) => {
          const thread = await pool.use(async (conn) => {
            await conn.query('SET @lg_marker = \'kept\'');
            await conn.beginTransaction();
            await conn.query(`INSERT INTO ${table} VALUES (1)`);
            return conn.threadId;
          });
          // Released with a transaction-opening query still in flight: the reset runs after it.
          const lease = await pool.acquire();
          const conn = lease.resource;
          const pending = Promise.all([conn.query('BEGIN'), conn.query(`INSERT INTO ${table} VALUES (2)`)]);
          lease.release();
          await pending;
          await pool.use(async (conn) => {
            assert.equal(conn.threadId, thread, 'the same connection, cleaned rather than replaced');
            assert.equal((await one<{ n: number }>(conn, `SELECT COUNT(*) AS n FROM ${table}`)).n, 0);
            assert.equal((await one<{ v: string | null }>(conn, 'SELECT @lg_marker AS v')).v, reset === 'connection' ? null : 'kept');
            assert.equal((await one<{ t: number }>(conn, 'SELECT @@in_transaction AS t')).t, 0);
          });
          assert.equal(pool.stats().created, 1);
        });
      } finally {
        await admin.query(`DROP TABLE ${table}`);
      }
    });
  }

  it('idle connections killed by the server are evicted at once; the next 20 acquires all succeed', async () => {
    await withPool(() => createMysql2Pool({ connection: base, max: 4, min: 4, name: 'my-kill-idle' }), (pool) => {
      const ids = threadIds(pool);
      return assertIdleKillsEvicted(pool, async () => {
        const victims = [...ids]; // replacements join `ids` as soon as the kills land
        await kill(victims);
        return victims;
      }, (conn) => Promise.resolve(conn.threadId));
    });
  });

  it('connections killed while in use: exactly their 2 queries fail; the other 2 and the next 20 acquires succeed', async () => {
    await withPool(() => createMysql2Pool({ connection: base, max: 4, name: 'my-kill-busy' }), async (pool) => {
      const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
      const ids = leases.map((l) => l.resource.threadId);
      const victims = new Set(leases.slice(0, 2).map((l) => l.resource));
      const outcomes = Promise.allSettled(leases.map((l, i) => l.resource.query(i < 2 ? 'SELECT SLEEP(30)' : 'SELECT SLEEP(0.3)')));
      await waitFor(async () => {
        const [rows] = await admin.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (?) AND INFO LIKE \'SELECT SLEEP%\'', [ids]);
        return rows.length === 4;
      }, 5000, 'the 4 queries to run');
      await kill(ids.slice(0, 2));
      const settled = await outcomes;
      assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'fulfilled', 'fulfilled']);
      for (const lease of leases) lease.release();

      await assertRecovered(pool, victims, (conn) => conn.query('SELECT 1'));
    });
  });

  it('a lease reported broken with destroy() is never lent again', () => withPool(
    () => createMysql2Pool({ connection: base, max: 1 }),
    (pool) => assertDestroyedLeaseReplaced(pool, (conn) => conn.query('SELECT 1'), port),
  ));
});
