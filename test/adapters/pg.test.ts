import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPgPool, pgFactory } from '../../src/adapters/pg.js';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService } from '../support/services.js';
import { assertDestroyedLeaseReplaced, assertIdleKillsEvicted, assertNoHandlesLeft, assertRecovered, createContext, uniqueName, waitFor, withPool } from './helpers.js';

const service = await requireService('postgres');
const { host, port, user, database } = SERVICES.postgres;
const base = { host, port, user, database };

describe('lifeguard/pg options', () => {
  it('rejects unknown keys, naming the key and the known options', () => {
    assert.throws(() => createPgPool({ conection: {} } as never), (e: Error & { code?: string; option?: string }) => {
      assert.equal(e.code, 'LG_INVALID_OPTION');
      assert.equal(e.option, 'conection');
      assert.match(e.message, /unknown option "conection" for createPgPool; known options: .*connectTimeoutMs.*maxLifetimeMs/);
      return true;
    });
    // The factory alone takes no pool options.
    assert.throws(() => pgFactory({ max: 3 } as never), /unknown option "max" for pgFactory/);
    assert.throws(() => createPgPool({ factory: pgFactory() } as never), /the adapter supplies the factory/);
  });

  it('validates its own options and the driver options it manages', () => {
    assert.throws(() => pgFactory({ connectTimeoutMs: 0 }), /invalid option "connectTimeoutMs": expected a number >= 1 \(or Infinity\), got number 0/);
    assert.throws(() => pgFactory({ reset: 'all' as never }), /invalid option "reset": expected one of "rollback", "discard", got the string "all"/);
    assert.throws(() => pgFactory({ connection: { connectionTimeoutMillis: 5 } }), (e: Error & { option?: string }) => {
      assert.equal(e.option, 'connection.connectionTimeoutMillis');
      assert.match(e.message, /: lifeguard\/pg manages it: use connectTimeoutMs; got number 5/);
      return true;
    });
    assert.throws(() => pgFactory({ connection: 'postgres://x' as never }), /invalid option "connection": expected an object/);
    // Pool options are validated by the pool, with its own messages.
    assert.throws(() => createPgPool({ max: 0 }), /invalid option "max": expected an integer >= 1, got number 0/);
  });
});

describe('lifeguard/pg against PostgreSQL', { skip: service.skip }, () => {
  const admin = new pg.Client(base);
  before(async () => { await admin.connect(); });
  after(async () => { await admin.end(); });

  async function backendPids(app: string): Promise<number[]> {
    const r = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid', [app]);
    return r.rows.map((row) => row.pid);
  }
  async function terminate(app: string, pids: readonly number[]): Promise<void> {
    // Scoped to this test's own backends: same application_name and the exact pids.
    const r = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid = ANY($2::int[])', [app, pids]);
    assert.equal(r.rows.filter((row) => row.ok).length, pids.length);
  }
  const pidOf = async (client: pg.Client): Promise<number> => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

  it('validates with SELECT 1, exposes the socket, and fails validation of a killed connection', async () => {
    const app = uniqueName('lg_pg_validate');
    const handles = activeResources();
    const factory = pgFactory({ connection: { ...base, application_name: app } });
    const context = createContext();
    const client = await factory.create(context);
    try {
      assert.equal(await factory.validate?.(client, { signal: new AbortController().signal }), true);
      const socket = factory.socket?.(client);
      assert.ok(socket);
      assert.equal(socket.remotePort, port);
      assert.equal(socket.localPort, (await admin.query<{ p: number }>('SELECT client_port AS p FROM pg_stat_activity WHERE application_name = $1', [app])).rows[0]?.p);
      // A validation past the pool's validateTimeoutMs is abandoned through the signal.
      const controller = new AbortController();
      const slow = factory.validate?.(client, { signal: controller.signal });
      controller.abort(new Error('validateTimeoutMs passed'));
      await assert.rejects(Promise.resolve(slow), /validateTimeoutMs passed/);
      await client.query('SELECT 1'); // the abandoned SELECT 1 finished; the client is still sound

      await terminate(app, await backendPids(app));
      await waitFor(() => context.invalidated.length === 1, 5000, 'the kill to be reported');
      const [reason] = context.invalidated as (Error & { code?: string })[];
      assert.ok(reason);
      assert.equal(reason.code, 'LG_CONNECTION_LOST');
      assert.match(reason.message, /pg connection to 127\.0\.0\.1:5432 \(backend pid \d+\) /);
      await assert.rejects(Promise.resolve(factory.validate?.(client, { signal: new AbortController().signal })), { code: 'LG_CONNECTION_LOST' });
    } finally {
      await factory.destroy(client);
    }
    assert.equal(context.invalidated.length, 1, 'destroying a dead connection reports nothing more');
    await assertNoHandlesLeft(handles, 'a destroyed client');
  });

  it('reset rolls back an open transaction and a failed one; session settings survive', async () => {
    const table = uniqueName('lg_pg_reset');
    await admin.query(`CREATE TABLE ${table} (id int)`);
    try {
      await withPool(() => createPgPool({ connection: base, max: 1, name: 'pg-reset' }), async (pool) => {
        let lease = await pool.acquire();
        const pid = await pidOf(lease.resource);
        await lease.resource.query('SET lifeguard.marker = \'kept\'');
        await lease.resource.query('BEGIN');
        await lease.resource.query(`INSERT INTO ${table} VALUES (1)`);
        assert.equal(lease.resource.getTransactionStatus(), 'T');
        lease.release();

        lease = await pool.acquire();
        assert.equal(await pidOf(lease.resource), pid, 'the same connection, cleaned rather than replaced');
        assert.equal(lease.resource.getTransactionStatus(), 'I');
        assert.equal((await lease.resource.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n, 0);
        assert.equal((await lease.resource.query<{ v: string }>('SELECT current_setting(\'lifeguard.marker\') AS v')).rows[0]?.v, 'kept');

        // A transaction aborted by an error ('E'): rolled back too.
        await lease.resource.query('BEGIN');
        const failing = lease.resource;
        await assert.rejects(failing.query('SELECT 1/0'));
        // The error reaches the caller before the server's ReadyForQuery('E') does.
        await waitFor(() => failing.getTransactionStatus() === 'E', 2000, 'transaction status E');
        lease.release();
        lease = await pool.acquire();
        assert.equal(await pidOf(lease.resource), pid);
        assert.equal(lease.resource.getTransactionStatus(), 'I');

        // Released while a transaction-opening query is still in flight: rolled back once it completes.
        const unawaited = lease.resource.query(`BEGIN; INSERT INTO ${table} VALUES (2); SELECT pg_sleep(0.1)`);
        lease.release();
        await unawaited;
        await pool.use(async (client) => {
          assert.equal(await pidOf(client), pid);
          assert.equal((await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n, 0);
        });
        assert.equal(pool.stats().created, 1);
        assert.equal(pool.stats().destroyed.error, 0);
      });
    } finally {
      await admin.query(`DROP TABLE ${table}`);
    }
  });

  it("reset 'discard' clears session state, and named prepared statements keep working", async () => {
    await withPool(() => createPgPool({ connection: base, max: 1, reset: 'discard' }), async (pool) => {
      const named = { name: 'lg_named', text: 'SELECT $1::int + 1 AS n', values: [1] };
      const pid = await pool.use(async (client) => {
        await client.query('SET lifeguard.marker = \'gone\'');
        await client.query('CREATE TEMP TABLE lg_temp (id int)');
        assert.equal((await client.query<{ n: number }>(named)).rows[0]?.n, 2);
        return pidOf(client);
      });
      await pool.use(async (client) => {
        assert.equal(await pidOf(client), pid);
        assert.equal((await client.query<{ v: string }>('SELECT current_setting(\'lifeguard.marker\', true) AS v')).rows[0]?.v, '');
        assert.equal((await client.query<{ t: string | null }>('SELECT to_regclass(\'pg_temp.lg_temp\') AS t')).rows[0]?.t, null);
        assert.equal((await client.query<{ n: number }>(named)).rows[0]?.n, 2, 'the client re-prepares after DISCARD ALL');
      });
    });
  });

  it('idle connections killed by the server are evicted at once; the next 20 acquires all succeed', async () => {
    const app = uniqueName('lg_pg_idle');
    await withPool(() => createPgPool({ connection: { ...base, application_name: app }, max: 4, min: 4, name: 'pg-kill-idle' }), (pool) => assertIdleKillsEvicted(
      pool,
      async () => {
        await waitFor(async () => (await backendPids(app)).length === 4, 5000, '4 backends');
        const pids = await backendPids(app);
        await terminate(app, pids);
        return pids;
      },
      pidOf,
    ));
  });

  it('connections killed while in use: exactly their 2 queries fail; the other 2 and the next 20 acquires succeed', async () => {
    const app = uniqueName('lg_pg_busy');
    await withPool(() => createPgPool({ connection: { ...base, application_name: app }, max: 4, name: 'pg-kill-busy' }), async (pool) => {
      const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
      const pids = await Promise.all(leases.map((l) => pidOf(l.resource)));
      const victims = new Set(leases.slice(0, 2).map((l) => l.resource));
      // Victims run a query the kill interrupts; survivors a short one.
      const inFlight = leases.map((l, i) => l.resource.query(i < 2 ? 'SELECT pg_sleep(30)' : 'SELECT pg_sleep(0.3)'));
      const outcomes = Promise.allSettled(inFlight);
      await waitFor(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = \'active\'', [app])).rowCount === 4, 5000, 'the 4 queries to run');
      await terminate(app, pids.slice(0, 2));
      const settled = await outcomes;
      assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'fulfilled', 'fulfilled']);
      for (const lease of leases) lease.release(); // the victims are released like the others: the pool knows

      await assertRecovered(pool, victims, (client) => client.query('SELECT 1'));
    });
  });

  it('a lease reported broken with destroy() is never lent again', () => withPool(
    () => createPgPool({ connection: base, max: 1 }),
    (pool) => assertDestroyedLeaseReplaced(pool, (client) => client.query('SELECT 1'), port),
  ));
});
