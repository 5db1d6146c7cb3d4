import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { drizzle } from 'drizzle-orm/node-postgres';
import { sql as dsql } from 'drizzle-orm';
import knexFactory from 'knex';
import pgDropIn, { Client, DatabaseError, Pool, escapeIdentifier, escapeLiteral, lendToKnex, types } from '../../src/adapters/pg.js';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService } from '../support/services.js';
import { callerLocation } from '../support/site.js';
import { assertLeakNamesLine, assertNoHandlesLeft, uniqueName, waitFor } from './helpers.js';

const service = await requireService('postgres');
const { host, port, user, database } = SERVICES.postgres;
const base = { host, port, user, database };
const watchLeaks = { leakDetection: 'full', leakWarnAfterMs: 150 } as const;


describe('lifeguard/pg Pool (drop-in) shape', () => {
  it('is an instanceof pg.Pool named Pool, and rejects bad options by name', async () => {
    const pool = new Pool({ ...base, max: 2 });
    assert.ok(pool instanceof pg.Pool);
    assert.equal((Object.getPrototypeOf(pool) as { constructor: { name: string } }).constructor.name, 'Pool');
    assert.equal(pool.totalCount, 0);
    await pool.end();
    assert.throws(() => new Pool({ max: -1 }), /invalid option "max" for lifeguard\/pg Pool: expected an integer >= 0, got number -1/);
    assert.throws(() => new Pool({ lifeguard: { max: 3 } as never }), (e: Error & { code?: string; option?: string }) => {
      assert.equal(e.code, 'LG_INVALID_OPTION');
      assert.equal(e.option, 'lifeguard.max');
      return true;
    });
    assert.throws(() => new Pool({ lifeguard: { leakWarnAfterMs: 'soon' as never } }), /invalid option "leakWarnAfterMs"/);
  });
});

describe('lifeguard/pg as the pg module (one import changed)', () => {
  // Regression (found trying the packed package): pg is CommonJS, so ESM code writes `import pg from 'pg'`
  // and `new pg.Pool()`, or imports Client and types beside Pool. `import pg from 'lifeguard/pg'` failed
  // ("does not provide an export named 'default'"), and so did `import { Client } from 'lifeguard/pg'`.
  it('has a default export that is pg with Pool replaced, and pg\'s other names beside Pool', async () => {
    assert.equal(pgDropIn.Pool, Pool);
    assert.equal(pgDropIn.Client, pg.Client);
    assert.equal(pgDropIn.types, pg.types);
    assert.equal(pgDropIn.defaults, pg.defaults);
    assert.equal(pgDropIn.escapeIdentifier('a"b'), '"a""b"');
    assert.equal(Client, pg.Client);
    assert.equal(types, pg.types);
    assert.equal(DatabaseError, pg.DatabaseError);
    assert.equal(escapeLiteral("it's"), "'it''s'");
    assert.equal(escapeIdentifier, pg.escapeIdentifier);
    // pg itself is left alone: its own Pool stays pg-pool.
    assert.notEqual(pg.Pool, Pool);
    const pool = new pgDropIn.Pool({ ...base, max: 1 });
    assert.ok('lifeguard' in pool);
    await pool.end();
  });
});

describe('lifeguard/pg Pool against PostgreSQL', { skip: service.skip }, () => {
  const admin = new pg.Client(base);
  before(async () => {
    await admin.connect();
    await admin.query('CREATE TABLE IF NOT EXISTS lg_dropin_items (id serial PRIMARY KEY, name text NOT NULL)');
  });
  after(async () => { await admin.end(); });

  it('runs queries and transactions with pg-pool\'s API, events and getters, and leaves no handle', async () => {
    const handles = activeResources();
    const app = uniqueName('lg_dropin');
    const pool = new Pool({ ...base, application_name: app, max: 2 });
    const events: string[] = [];
    for (const name of ['connect', 'acquire', 'release', 'remove'] as const) pool.on(name, () => { events.push(name); });
    const r = await pool.query<{ n: number }>('SELECT $1::int AS n', [7]);
    assert.equal(r.rows[0]?.n, 7);
    const client = await pool.connect();
    assert.equal(pool.idleCount, 0);
    assert.equal(pool.totalCount, 1);
    await client.query('BEGIN');
    await client.query('INSERT INTO lg_dropin_items (name) VALUES ($1)', [app]);
    await client.query('COMMIT');
    client.release();
    assert.equal(pool.idleCount, 1);
    assert.throws(() => { client.release(); }, /Release called on client which has already been released to the pool/);
    const viaCallback = await new Promise<number>((resolve, reject) => {
      pool.query('SELECT count(*)::int AS n FROM lg_dropin_items WHERE name = $1', [app], (err: Error | undefined, res: pg.QueryResult<{ n: number }>) => {
        if (err) reject(err);
        else resolve(res.rows[0]?.n ?? -1);
      });
    });
    assert.equal(viaCallback, 1);
    // A client released inside a transaction comes back rolled back, never mid-transaction.
    const open = await pool.connect();
    await open.query('BEGIN');
    await open.query('INSERT INTO lg_dropin_items (name) VALUES ($1)', [app]);
    open.release();
    await waitFor(() => pool.idleCount === 1, 5000, 'the rolled back client to be idle');
    const again = await pool.connect();
    assert.equal(again.getTransactionStatus?.() ?? 'I', 'I');
    assert.equal((await again.query<{ n: number }>('SELECT count(*)::int AS n FROM lg_dropin_items WHERE name = $1', [app])).rows[0]?.n, 1);
    again.release(new Error('done with it'));
    await waitFor(() => events.includes('remove'), 5000, 'a remove event');
    await pool.end();
    await assert.rejects(pool.connect(), /Cannot use a pool after calling end on the pool/);
    assert.ok(pool.ended);
    assert.deepEqual(events.slice(0, 3), ['connect', 'acquire', 'release']);
    await assertNoHandlesLeft(handles, 'the drop-in pool after end()');
  });

  it('fails a connect with the connection error at once, as pg-pool does, and times out a full pool with both wordings', async () => {
    const pool = new Pool({ host: '127.0.0.1', port: 1, user, database });
    await assert.rejects(pool.connect(), (e: Error & { code?: string }) => e.code === 'ECONNREFUSED');
    assert.equal(pool.totalCount, 0);
    await pool.end();
    const full = new Pool({ ...base, max: 1, connectionTimeoutMillis: 200 });
    const held = await full.connect();
    await assert.rejects(full.connect(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'LG_ACQUIRE_TIMEOUT');
      assert.match(e.message, /^timeout exceeded when trying to connect: .*max=1/);
      return true;
    });
    held.release();
    await full.end();
  });

  it('a client held past lifeguard.reclaimAfterMs is taken back: its slot serves the next caller, its late release is harmless', async () => {
    const pool = new Pool({ ...base, max: 1, lifeguard: { reclaimAfterMs: 200 } });
    const removed: unknown[] = [];
    pool.on('remove', (client) => { removed.push(client); });
    const held = await pool.connect();
    const next = await pool.connect(); // waits until the first is reclaimed
    assert.notEqual(next, held);
    // 'remove' comes once the reclaimed client has ended, which may be after the next one connected.
    for (let i = 0; i < 100 && removed.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(removed, [held]);
    held.release();
    assert.equal((await next.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n, 1);
    next.release();
    assert.equal(pool.totalCount, 1);
    await pool.end();
  });

  it('Kysely (PostgresDialect): queries, a transaction, and a leak named by its line', async () => {
    const pool = new Pool({ ...base, max: 3, lifeguard: watchLeaks });
    const db = new Kysely<{ lg_dropin_items: { id: number; name: string } }>({ dialect: new PostgresDialect({ pool }) });
    const name = uniqueName('kysely');
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('lg_dropin_items').values({ name } as never).execute();
    });
    const rows = await db.selectFrom('lg_dropin_items').select('name').where('name', '=', name).execute();
    assert.equal(rows.length, 1);
    const report = await assertLeakNamesLine(pool, async (gate, mark) => {
      mark(callerLocation(1)); await db.connection().execute(async (conn) => { await sql`SELECT 1`.execute(conn); await gate; });
    });
    assert.equal(report.kind, 'held');
    await db.destroy();
  });

  it('Drizzle (node-postgres): queries, a transaction, and a leak named by its line', async () => {
    const pool = new Pool({ ...base, max: 3, lifeguard: watchLeaks });
    const db = drizzle(pool as unknown as pg.Pool);
    const name = uniqueName('drizzle');
    await db.transaction(async (tx) => {
      await tx.execute(dsql`INSERT INTO lg_dropin_items (name) VALUES (${name})`);
    });
    const result = await db.execute(dsql`SELECT count(*)::int AS n FROM lg_dropin_items WHERE name = ${name}`);
    assert.equal((result.rows[0] as { n: number } | undefined)?.n, 1);
    await assertLeakNamesLine(pool, async (gate, mark) => {
      mark(callerLocation(1)); await db.transaction(async (tx) => { await tx.execute(dsql`SELECT 1`); await gate; });
    });
    await pool.end();
  });

  it('knex (pg client, connections acquired from the drop-in): queries, a transaction, and a leak named by its line', async () => {
    const pool = new Pool({ ...base, max: 3, lifeguard: watchLeaks });
    const db = lendToKnex(knexFactory({ client: 'pg', connection: base }), pool);
    const name = uniqueName('knex');
    await db.transaction(async (trx) => { await trx('lg_dropin_items').insert({ name }); });
    const rows = await db('lg_dropin_items').where({ name }).select('name');
    assert.equal(rows.length, 1);
    await assertLeakNamesLine(pool, async (gate, mark) => {
      mark(callerLocation(1)); await db.transaction(async (trx) => { await trx.raw('SELECT 1'); await gate; });
    });
    await db.destroy();
    await pool.end();
  });
});
