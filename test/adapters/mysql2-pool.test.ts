import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2';
import { Kysely, MysqlDialect, sql } from 'kysely';
import { drizzle } from 'drizzle-orm/mysql2';
import { sql as dsql } from 'drizzle-orm';
import mysqlDropIn, { createConnection, createPool, escape, format } from '../../src/adapters/mysql2.js';
import mysqlPromiseDropIn, { createPool as createPromisePool, createConnection as createPromiseConnection } from '../../src/adapters/mysql2-promise.js';
import mysqlPromise from 'mysql2/promise';
import { createServer as createNetServer } from 'node:net';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService } from '../support/services.js';
import { callerLocation } from '../support/site.js';
import { assertLeakNamesLine, assertNoHandlesLeft, uniqueName, waitFor } from './helpers.js';

const service = await requireService('mariadb');
const { host, port, user, database } = SERVICES.mariadb;
const base = { host, port, user, database };
const watchLeaks = { leakDetection: 'full', leakWarnAfterMs: 150 } as const;

/** A loopback port nothing listens on (just released). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as import('node:net').AddressInfo;
      probe.close(() => { resolve(free); });
    });
  });
}

describe('lifeguard/mysql2 createPool (drop-in) options', () => {
  it('refuses a pool without a cap and Lifeguard options that mysql2 options set', () => {
    assert.throws(() => createPool({ ...base, connectionLimit: 0 }), /invalid option "connectionLimit" .*expected an integer >= 1/);
    assert.throws(() => createPool({ ...base, lifeguard: { max: 2 } as never }), (e: Error & { option?: string }) => e.option === 'lifeguard.max');
  });
});

describe('lifeguard/mysql2 as the mysql2 module (one import changed)', () => {
  // Regression (found trying the packed package): mysql2 is CommonJS, so ESM code writes
  // `import mysql from 'mysql2/promise'` and `mysql.createPool()`; `import mysql from 'lifeguard/mysql2/promise'`
  // failed ("does not provide an export named 'default'"), and so did importing createConnection or format.
  it('has default exports that are mysql2 and mysql2/promise with createPool replaced, and their other names', () => {
    assert.equal(mysqlDropIn.createPool, createPool);
    assert.equal(mysqlDropIn.createConnection, mysql.createConnection);
    assert.equal(mysqlDropIn.format('SELECT ?', [1]), 'SELECT 1');
    assert.equal(createConnection, mysql.createConnection);
    assert.equal(format, mysql.format);
    assert.equal(escape("it's"), "'it\\'s'");
    assert.equal(mysqlPromiseDropIn.createPool, createPromisePool);
    assert.equal(mysqlPromiseDropIn.createConnection, mysqlPromise.createConnection);
    assert.equal(createPromiseConnection, mysqlPromise.createConnection);
    assert.equal(mysqlPromiseDropIn.escapeId('a'), '`a`');
    // mysql2 itself is left alone.
    assert.notEqual(mysql.createPool, createPool);
    assert.notEqual(mysqlPromise.createPool, createPromisePool);
  });
});

describe('lifeguard/mysql2 createPool: a failed connect', () => {
  // Regression (mysql2's own test-pool-connect-error run against the drop-in): mysql2 hands a failed
  // connect's error to the getConnection() or query() it was made for; the drop-in retried behind the
  // caller's back, so with mysql2's default of no acquire deadline the caller waited forever (the bound
  // below only turns that hang into a failure).
  it('is the error of the caller it was made for, as in mysql2 (ECONNREFUSED, and a server refusing with 1040)', async () => {
    const closed = await freePort();
    const refused = createPool({ host: '127.0.0.1', port: closed, user: 'nobody', connectionLimit: 2, lifeguard: { acquireTimeoutMs: 5000 } });
    const err1 = await new Promise<Error & { code?: string }>((resolve) => {
      refused.getConnection((err) => { resolve(err as Error); });
    });
    assert.equal(err1.code, 'ECONNREFUSED');
    const err2 = await new Promise<Error & { code?: string }>((resolve) => {
      refused.query('SELECT 1', (err) => { resolve(err as Error); });
    });
    assert.equal(err2.code, 'ECONNREFUSED');
    await new Promise<void>((resolve) => { refused.end(() => { resolve(); }); });

    const server = mysql.createServer((conn) => {
      (conn as unknown as { serverHandshake(o: unknown): void }).serverHandshake({
        protocolVersion: 10, serverVersion: '5.6.10', connectionId: 1234, statusFlags: 2, characterSet: 8, capabilityFlags: 0xffffff,
        authCallback: (_params: unknown, cb: (err: null, res: { message: string; code: number }) => void) => { cb(null, { message: 'too many connections', code: 1040 }); },
      });
    });
    const port = await new Promise<number>((resolve) => {
      (server as unknown as { listen(p: number, cb: () => void): void }).listen(0, () => {
        resolve(((server as unknown as { _server: import('node:net').Server })._server.address() as import('node:net').AddressInfo).port);
      });
    });
    const busy = createPromisePool({ host: '127.0.0.1', port, user: 'test_user', connectionLimit: 2, lifeguard: { acquireTimeoutMs: 5000 } });
    await assert.rejects(busy.query('SELECT 1'), (err: Error & { errno?: number }) => err.errno === 1040);
    await busy.end();
    await new Promise<void>((resolve) => { (server as unknown as { close(cb: () => void): void }).close(() => { resolve(); }); });
  });
});

describe('lifeguard/mysql2 createPool against MariaDB', { skip: service.skip }, () => {
  const admin = mysql.createConnection(base);
  before(async () => {
    await admin.promise().query('CREATE TABLE IF NOT EXISTS lg_dropin_items (id int AUTO_INCREMENT PRIMARY KEY, name varchar(200) NOT NULL)');
  });
  after(async () => { await admin.promise().end(); });

  it('query, execute, getConnection and release, events, the promise wrapper, end; no handle left', async () => {
    const handles = activeResources();
    const pool = createPool({ ...base, connectionLimit: 2 });
    const events: string[] = [];
    for (const name of ['connection', 'acquire', 'release'] as const) pool.on(name, () => { events.push(name); });
    const rows = await new Promise<unknown>((resolve, reject) => {
      pool.query('SELECT 1 + ? AS n', [1], (err, result) => { if (err) reject(err); else resolve(result); });
    });
    assert.deepEqual(rows, [{ n: 2 }]);
    const executed = await new Promise<unknown>((resolve, reject) => {
      pool.execute('SELECT ? AS s', ['x'], (err, result) => { if (err) reject(err); else resolve(result); });
    });
    assert.deepEqual(executed, [{ s: 'x' }]);
    const name = uniqueName('mysql2');
    const conn = await new Promise<mysql.PoolConnection>((resolve, reject) => {
      pool.getConnection((err, c) => { if (err) reject(err); else resolve(c); });
    });
    await conn.promise().beginTransaction();
    await conn.promise().query('INSERT INTO lg_dropin_items (name) VALUES (?)', [name]);
    await conn.promise().commit();
    conn.release();
    conn.release(); // a second release is a no-op, as in mysql2
    const promised = pool.promise();
    const [counted] = await promised.query('SELECT COUNT(*) AS n FROM lg_dropin_items WHERE name = ?', [name]);
    assert.deepEqual(counted, [{ n: 1 }]);
    const pc = await promised.getConnection();
    await pc.ping();
    pc.release();
    assert.deepEqual(events.slice(0, 3), ['connection', 'acquire', 'release']);
    assert.ok(pool.lifeguard.stats().size >= 1 && pool.lifeguard.stats().size <= 2);
    await new Promise<void>((resolve, reject) => { pool.end((err) => { if (err) reject(err); else resolve(); }); });
    await assert.rejects(promised.query('SELECT 1'), /Pool is closed/);
    await assertNoHandlesLeft(handles, 'the mysql2 drop-in after end()');
  });

  // Regression (mysql2's own test-pool-destroy-removes-connection, test-pool-double-release, dispose/* and
  // test-pool-end run against the drop-in): code that watches a mysql2 pool reads its queues
  // (`_allConnections.length`, `_freeConnections.length`, `_connectionQueue.length`); on the drop-in they were
  // mysql2's own, always empty.
  it('shows its connections in mysql2\'s _allConnections, _freeConnections and _connectionQueue', async () => {
    type Queue = { length: number; get(i: number): unknown; toArray(): unknown[] };
    const pool = createPool({ ...base, connectionLimit: 3 });
    const queues = pool as unknown as { _allConnections: Queue; _freeConnections: Queue; _connectionQueue: Queue };
    const get = (): Promise<mysql.PoolConnection> => new Promise((resolve, reject) => {
      pool.getConnection((err, c) => { if (err) reject(err); else resolve(c); });
    });
    const [first, second, third] = [await get(), await get(), await get()];
    assert.equal(queues._allConnections.length, 3);
    assert.equal(queues._freeConnections.length, 0);
    const waiter = get();
    assert.equal(queues._connectionQueue.length, 1);
    third.release();
    const fourth = await waiter;
    assert.equal(fourth, third);
    assert.equal(queues._connectionQueue.length, 0);
    second.release();
    fourth.release();
    assert.deepEqual([queues._allConnections.length, queues._freeConnections.length], [3, 2]);
    assert.ok(queues._freeConnections.toArray().includes(second));
    assert.ok(queues._allConnections.toArray().includes(first));
    first.destroy();
    assert.deepEqual([queues._allConnections.length, queues._freeConnections.length], [2, 2]);
    second.destroy();
    assert.deepEqual([queues._allConnections.length, queues._freeConnections.length], [1, 1]);
    assert.equal(queues._freeConnections.get(0), third);
    await new Promise<void>((resolve) => { pool.end(() => { resolve(); }); });
    assert.deepEqual([queues._allConnections.length, queues._freeConnections.length], [0, 0]);
  });

  // Regression (mysql2's own test-pool-release-idle-connection run against the drop-in): mysql2 closes the
  // free connections beyond maxIdle within a second; the drop-in ignored maxIdle and kept them until
  // idleTimeout (60 s by default).
  it('closes the free connections beyond maxIdle, the least recently used first, as mysql2 does', async () => {
    const pool = createPool({ ...base, connectionLimit: 5, maxIdle: 1 });
    const all = (): number => (pool as unknown as { _allConnections: { length: number } })._allConnections.length;
    const get = (): Promise<mysql.PoolConnection> => new Promise((resolve, reject) => {
      pool.getConnection((err, c) => { if (err) reject(err); else resolve(c); });
    });
    const held = [await get(), await get(), await get()];
    for (const conn of held) conn.release();
    assert.equal(all(), 3);
    await waitFor(() => all() === 1, 5000, 'the free connections beyond maxIdle to be closed');
    assert.equal(await get(), held[2]);
    await new Promise<void>((resolve) => { pool.end(() => { resolve(); }); });
  });

  it('evicts a connection killed while idle and serves the next query on a new one', async () => {
    const pool = createPromisePool({ ...base, connectionLimit: 1 });
    const [[first]] = await pool.query('SELECT CONNECTION_ID() AS id') as unknown as [[{ id: number }]];
    await admin.promise().query(`KILL ${first.id}`);
    await waitFor(() => pool.lifeguard.stats().size === 0, 5000, 'the killed connection to be evicted');
    const [[second]] = await pool.query('SELECT CONNECTION_ID() AS id') as unknown as [[{ id: number }]];
    assert.notEqual(second.id, first.id);
    await pool.end();
  });

  it('Kysely (MysqlDialect): queries, a transaction, and a leak named by its line', async () => {
    const pool = createPool({ ...base, connectionLimit: 3, lifeguard: watchLeaks });
    const db = new Kysely<{ lg_dropin_items: { id: number; name: string } }>({ dialect: new MysqlDialect({ pool }) });
    const name = uniqueName('kysely');
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('lg_dropin_items').values({ name } as never).execute();
    });
    const rows = await db.selectFrom('lg_dropin_items').select('name').where('name', '=', name).execute();
    assert.equal(rows.length, 1);
    await assertLeakNamesLine(pool, async (gate, mark) => {
      mark(callerLocation(1)); await db.connection().execute(async (conn) => { await sql`SELECT 1`.execute(conn); await gate; });
    });
    await db.destroy();
  });

  it('Drizzle (mysql2 driver): queries, a transaction, and a leak named by its line', async () => {
    const pool = createPool({ ...base, connectionLimit: 3, lifeguard: watchLeaks });
    const db = drizzle({ client: pool });
    const name = uniqueName('drizzle');
    await db.transaction(async (tx) => {
      await tx.execute(dsql`INSERT INTO lg_dropin_items (name) VALUES (${name})`);
    });
    const [counted] = await db.execute(dsql`SELECT COUNT(*) AS n FROM lg_dropin_items WHERE name = ${name}`) as unknown as [[{ n: number }]];
    assert.equal(String(counted[0].n), '1');
    await assertLeakNamesLine(pool, async (gate, mark) => {
      mark(callerLocation(1)); await db.transaction(async (tx) => { await tx.execute(dsql`SELECT 1`); await gate; });
    });
    await new Promise<void>((resolve) => { pool.end(() => { resolve(); }); });
  });
});
