import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createIoredisPool, ioredisFactory } from '../../src/adapters/ioredis.js';
import { createMysql2Pool, mysql2Factory } from '../../src/adapters/mysql2.js';
import { createPgPool, pgFactory } from '../../src/adapters/pg.js';
import { GOODBYE_GRACE_MS, closeConnection, loadDriver } from '../../src/adapters/shared.js';
import { DriverMissingError } from '../../src/adapters/errors.js';
import { LifeguardError } from '../../src/pool/errors.js';
import type { Pool } from '../../src/pool/pool.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { activeResources } from '../support/handles.js';
import { SERVICES, requireService, type ServiceName } from '../support/services.js';
import { SilentServer, assertNoHandlesLeft, createContext, recordDestroys, waitFor, withPool } from './helpers.js';

describe('adapters: loading the optional drivers', () => {
  it('a missing driver package fails with LG_DRIVER_MISSING, naming the package to install', async () => {
    const missing = 'lifeguard-test-no-such-driver';
    await assert.rejects(loadDriver(() => import(missing) as Promise<unknown>, missing, 'lifeguard/example'), (e) => {
      assert.ok(e instanceof LifeguardError);
      assert.ok(e instanceof DriverMissingError);
      assert.equal(e.code, 'LG_DRIVER_MISSING');
      assert.equal(e.packageName, missing);
      assert.equal(e.message, `lifeguard/example needs the "${missing}" package, which could not be loaded: install it with "npm install ${missing}"`);
      assert.equal((e.cause as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
      return true;
    });
  });

  it('a driver that is installed but fails to load is reported as it is', async () => {
    const broken = new TypeError('driver init failed');
    await assert.rejects(loadDriver(() => Promise.reject(broken), 'pg', 'lifeguard/pg'), (e) => e === broken);
    // A missing dependency of the driver is not the driver missing.
    const nested = Object.assign(new Error('Cannot find package \'pg-protocol\' imported from pg'), { code: 'ERR_MODULE_NOT_FOUND' });
    await assert.rejects(loadDriver(() => Promise.reject(nested), 'pg', 'lifeguard/pg'), (e) => e === nested);
  });

  it("lifeguard's main entry loads no driver; each adapter loads only its own", () => {
    const dist = fileURLToPath(new URL('../../src/', import.meta.url));
    const loaded = (entry: string): string[] => {
      const script = `await import(${JSON.stringify(dist + entry)});
        const { createRequire } = await import('node:module');
        const cache = Object.keys(createRequire(import.meta.url).cache);
        console.log(JSON.stringify(['pg', 'mysql2', 'ioredis'].filter((d) => cache.some((p) => p.includes('/node_modules/' + d + '/')))));`;
      return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })) as string[];
    };
    assert.deepEqual(loaded('index.js'), []);
    assert.deepEqual(loaded('adapters/pg.js'), ['pg']);
    assert.deepEqual(loaded('adapters/mysql2.js'), ['mysql2']);
    assert.deepEqual(loaded('adapters/ioredis.js'), ['ioredis']);
  });
});

describe('adapters: failures leave nothing behind', () => {
  it('closeConnection destroys the connection when the goodbye never completes', async () => {
    const handles = activeResources();
    let killed = 0;
    const started = Date.now();
    await closeConnection(() => new Promise(() => undefined), () => { killed++; });
    assert.equal(killed, 1);
    assert.ok(Date.now() - started >= GOODBYE_GRACE_MS - 20, 'waited for the goodbye first');
    // A failing goodbye is no reason to keep the socket either.
    await closeConnection(() => Promise.reject(new Error('EPIPE')), () => { killed++; });
    assert.equal(killed, 2);
    await assertNoHandlesLeft(handles, 'closeConnection');
  });

  it('a refused connection rejects with the driver\'s error and leaves no handle, for every adapter', async () => {
    // A port that was just free: nothing listens on it.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));

    const handles = activeResources();
    const factories = [
      pgFactory({ connection: { host: '127.0.0.1', port } }),
      mysql2Factory({ connection: { host: '127.0.0.1', port } }),
      ioredisFactory({ connection: { host: '127.0.0.1', port } }),
    ];
    for (const factory of factories) {
      const context = createContext();
      await assert.rejects(factory.create(context), /ECONNREFUSED/);
    }
    await assertNoHandlesLeft(handles, 'the refused connects');
  });

  for (const [name, make] of [
    ['pg', (port: number) => pgFactory({ connection: { host: '127.0.0.1', port }, connectTimeoutMs: 150 })],
    ['mysql2', (port: number) => mysql2Factory({ connection: { host: '127.0.0.1', port }, connectTimeoutMs: 150 })],
    ['ioredis', (port: number) => ioredisFactory({ connection: { host: '127.0.0.1', port }, connectTimeoutMs: 150 })],
  ] as const) {
    it(`${name}: connect timeout against a server that accepts and never answers; the half-open socket is destroyed`, async () => {
      const server = new SilentServer();
      const port = await server.listen();
      const handles = activeResources();
      const factory = make(port);
      await assert.rejects(factory.create(createContext()), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'LG_CONNECT_TIMEOUT');
        assert.match(e.message, new RegExp(`^${name} connection to 127\\.0\\.0\\.1:${port}: not connected within connectTimeoutMs=150; the half-open connection was destroyed$`));
        return true;
      });
      await waitFor(() => server.closed === 1, 2000, 'the server to see the client socket close');

      // The create's signal (the pool's createTimeoutMs, or destroy()) abandons the attempt the same way.
      const controller = new AbortController();
      const attempt = factory.create(createContext(controller.signal));
      await waitFor(() => server.accepted === 2, 2000, 'the second connection');
      const reason = new Error('pool destroyed');
      controller.abort(reason);
      await assert.rejects(attempt, (e) => e === reason);
      await waitFor(() => server.closed === 2, 2000, 'the aborted socket to close');
      await assertNoHandlesLeft(handles, 'the timed-out and aborted connects');
      await server.close();
    });
  }
});

describe('adapters: through a pool', () => {
  it('a pool whose server never answers times out acquires with the connect timeout as cause, and leaves nothing open', async () => {
    const server = new SilentServer();
    const port = await server.listen();
    await withPool(() => createPgPool({ connection: { host: '127.0.0.1', port }, connectTimeoutMs: 100, acquireTimeoutMs: 450, max: 2 }), async (pool) => {
      await assert.rejects(pool.acquire(), (e: Error & { code?: string; cause?: { code?: string } }) => {
        assert.equal(e.code, 'LG_ACQUIRE_TIMEOUT');
        assert.equal(e.cause?.code, 'LG_CONNECT_TIMEOUT');
        return true;
      });
      assert.ok(pool.stats().createErrors >= 1);
    });
    await waitFor(() => server.closed === server.accepted, 2000, 'every attempted socket to be closed');
    assert.ok(server.accepted >= 1);
    await server.close();
  });

  const cases: readonly { driver: string; service: ServiceName; make: (port: number) => Pool<unknown> }[] = [
    { driver: 'pg', service: 'postgres', make: (port) => createPgPool({ connection: { host: '127.0.0.1', port, user: SERVICES.postgres.user, database: SERVICES.postgres.database }, min: 2, max: 2 }) as Pool<unknown> },
    { driver: 'mysql2', service: 'mariadb', make: (port) => createMysql2Pool({ connection: { host: '127.0.0.1', port, user: SERVICES.mariadb.user, database: SERVICES.mariadb.database }, min: 2, max: 2 }) as Pool<unknown> },
    { driver: 'ioredis', service: 'redis', make: (port) => createIoredisPool({ connection: { host: '127.0.0.1', port }, min: 2, max: 2 }) as Pool<unknown> },
  ];
  for (const { driver, service, make } of cases) {
    it(`${driver}: idle connections half-closed by the peer are evicted at once (incident 5)`, async (t) => {
      const check = await requireService(service);
      if (check.skip !== false) {
        t.skip(check.skip);
        return;
      }
      const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: SERVICES[service].port } });
      try {
        await withPool(() => make(proxy.port), async (pool) => {
          const destroys = recordDestroys(pool);
          await pool.ready();
          assert.equal(pool.stats().idle, 2);
          // Both idle connections get a FIN, as from a server that closes its side (a wait_timeout, a
          // restart); the replacements are left alone.
          assert.equal(proxy.halfClose(), 2);
          await waitFor(() => pool.stats().destroyed.error === 2, 5000, 'the 2 half-closed connections to be evicted');
          assert.ok(destroys.every((d) => (d.cause as { code?: string }).code === 'LG_CONNECTION_LOST'));
          // Replaced up to min through the same proxy, and working.
          await waitFor(() => pool.stats().idle === 2, 5000, 'the replacements');
          assert.equal(pool.stats().created, 4);
        });
        await waitFor(() => proxy.open === 0, 2000, 'the proxy to see every connection closed');
      } finally {
        await proxy.close();
      }
    });
  }
});

describe('test support: requireService', () => {
  const services = fileURLToPath(new URL('../support/services.js', import.meta.url));
  // Asynchronous: the impostor server below lives in this process and must answer while the child probes.
  const probe = (port: number, require: boolean): Promise<{ status: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', `const { requireService } = await import(${JSON.stringify(services)}); console.log(JSON.stringify(await requireService('redis')));`],
      { encoding: 'utf8', timeout: 20_000, env: { ...process.env, LIFEGUARD_REDIS_PORT: String(port), LIFEGUARD_REQUIRE_SERVICES: require ? '1' : '' } },
      (error, stdout, stderr) => { resolve({ status: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr }); },
    );
  });

  it('skips with the reason and how to start the server, or fails when LIFEGUARD_REQUIRE_SERVICES=1', async () => {
    // Something that answers, but not as Redis does.
    const impostor = net.createServer((socket) => {
      socket.resume(); // read to the client's FIN, so the socket closes and impostor.close() can finish
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as net.AddressInfo).port;
    try {
      const skipped = await probe(port, false);
      assert.equal(skipped.status, 0, skipped.stderr);
      const { skip } = JSON.parse(skipped.stdout) as { skip: string };
      assert.match(skip, new RegExp(`^redis unavailable \\(127\\.0\\.0\\.1:${port} answered, but not as redis does\\); start it with: redis-server .*LIFEGUARD_REQUIRE_SERVICES=1`));
      const failed = await probe(port, true);
      assert.notEqual(failed.status, 0);
      assert.match(failed.stderr, /ServiceUnavailableError: redis unavailable .*LIFEGUARD_REQUIRE_SERVICES is set, so this fails instead of skipping/);
    } finally {
      await new Promise<void>((resolve) => impostor.close(() => { resolve(); }));
    }
    // Refused.
    assert.match((JSON.parse((await probe(port, false)).stdout) as { skip: string }).skip, /cannot reach 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });

  it('runs when the server answers', async () => {
    const check = await requireService('redis');
    if (check.skip !== false) return; // nothing to compare against on a machine without Redis
    assert.deepEqual(JSON.parse((await probe(SERVICES.redis.port, true)).stdout), { skip: false });
  });
});
