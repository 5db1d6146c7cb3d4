/**
 * Probes the real servers the integration tests use (PostgreSQL, MariaDB, Redis) and tells a test whether to
 * run, skip, or fail.
 *
 * Usage, at the top of a test file (top-level await is fine in ESM test files):
 *
 * ```ts
 * import { requireService, SERVICES } from '../support/services.js';
 * const pg = await requireService('postgres');
 * describe('pg adapter', { skip: pg.skip }, () => { ... });
 * // SERVICES.postgres.host / .port / .user / .database for the connection settings
 * ```
 *
 * - Service reachable: `{ skip: false }`.
 * - Unreachable and `LIFEGUARD_REQUIRE_SERVICES` unset (a developer machine without the servers):
 *   `{ skip: '<why, and how to start it>' }`, so the tests show as skipped with that message.
 * - Unreachable and `LIFEGUARD_REQUIRE_SERVICES=1` (CI): the returned promise rejects with
 *   {@link ServiceUnavailableError}, which fails the test file at load time: CI never silently skips.
 *
 * The probe speaks a few bytes of each server's own protocol over loopback, not just a TCP connect, so a
 * port taken by something else does not count as the service: PostgreSQL answers an SSLRequest with 'S' or
 * 'N', MariaDB sends its handshake packet (protocol version 10) first, Redis answers PING with +PONG.
 * It needs no driver, so the helper works whichever driver a test uses. Results are cached per process.
 *
 * Addresses default to the development/CI servers (see /work/shared/SERVICES.md) and can be overridden with
 * `LIFEGUARD_<NAME>_HOST` / `LIFEGUARD_<NAME>_PORT` (NAME = POSTGRES, MARIADB, REDIS).
 */
import net from 'node:net';

export type ServiceName = 'postgres' | 'mariadb' | 'redis';

export interface ServiceAddress {
  readonly host: string;
  readonly port: number;
  /** User to log in as (PostgreSQL, MariaDB); trust auth / empty password on the test servers. */
  readonly user: string;
  /** Database name (PostgreSQL, MariaDB). */
  readonly database: string;
}

export type ServiceCheck = { readonly skip: false } | { readonly skip: string };

/** Thrown (as a rejection of {@link requireService}) when a required service is unreachable. */
export class ServiceUnavailableError extends Error {
  readonly code = 'LG_TEST_SERVICE_UNAVAILABLE';
  override readonly name = 'ServiceUnavailableError';
}

const PROBE_TIMEOUT_MS = 2_000;

function address(name: ServiceName, port: number, user: string, database: string): ServiceAddress {
  const upper = name.toUpperCase();
  const envPort = process.env[`LIFEGUARD_${upper}_PORT`];
  return {
    host: process.env[`LIFEGUARD_${upper}_HOST`] ?? '127.0.0.1',
    port: envPort === undefined ? port : Number(envPort),
    user,
    database,
  };
}

/** Connection settings of the servers the tests use. */
export const SERVICES: Readonly<Record<ServiceName, ServiceAddress>> = {
  postgres: address('postgres', 5432, process.env['LIFEGUARD_POSTGRES_USER'] ?? 'postgres', 'test'),
  mariadb: address('mariadb', 3306, process.env['LIFEGUARD_MARIADB_USER'] ?? 'root', 'test'),
  redis: address('redis', 6379, '', ''),
};

const HOW_TO_START: Readonly<Record<ServiceName, string>> = {
  postgres: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
  mariadb: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
  redis: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
};

// PostgreSQL SSLRequest: length 8, code 80877103. The server answers one byte, 'S' or 'N', then waits.
const PG_SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** Whether the bytes received so far prove the service is the one expected; undefined: need more bytes. */
function recognise(name: ServiceName, data: Buffer): boolean | undefined {
  switch (name) {
    case 'postgres': {
      if (data.length < 1) return undefined;
      return data[0] === 0x53 || data[0] === 0x4e;
    }
    case 'mariadb': {
      // 3-byte length, 1-byte sequence id, then the protocol version (10), or 0xff for an error packet
      // (e.g. "Host is blocked"), which still proves a MariaDB/MySQL server is listening.
      if (data.length < 5) return undefined;
      return data[4] === 10 || data[4] === 0xff;
    }
    case 'redis': {
      if (data.length < 7) return undefined;
      return data.subarray(0, 7).toString('latin1') === '+PONG\r\n';
    }
  }
}

/** Resolves to null when the service answered as expected, or to the reason it did not. */
function probe(name: ServiceName): Promise<string | null> {
  const { host, port } = SERVICES[name];
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = net.connect({ host, port });
    const finish = (reason: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => {
      finish(`no answer from ${host}:${String(port)} within ${String(PROBE_TIMEOUT_MS)} ms`);
    }, PROBE_TIMEOUT_MS);
    socket.once('connect', () => {
      if (name === 'postgres') socket.write(PG_SSL_REQUEST);
      else if (name === 'redis') socket.write('PING\r\n');
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const ok = recognise(name, received);
      if (ok === true) finish(null);
      else if (ok === false) finish(`${host}:${String(port)} answered, but not as ${name} does`);
    });
    socket.once('error', (error: Error) => {
      finish(`cannot reach ${host}:${String(port)}: ${error.message}`);
    });
    socket.once('close', () => {
      finish(`${host}:${String(port)} closed the connection before answering`);
    });
  });
}

const cache = new Map<ServiceName, Promise<string | null>>();

/** Whether `LIFEGUARD_REQUIRE_SERVICES` asks for failures instead of skips. */
export function servicesRequired(): boolean {
  const v = process.env['LIFEGUARD_REQUIRE_SERVICES'];
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * Probes `name` (once per process) and says whether tests needing it run (`{ skip: false }`) or skip
 * (`{ skip: message }`); rejects with {@link ServiceUnavailableError} instead of skipping when
 * `LIFEGUARD_REQUIRE_SERVICES=1`.
 */
export async function requireService(name: ServiceName): Promise<ServiceCheck> {
  let pending = cache.get(name);
  if (pending === undefined) {
    pending = probe(name);
    cache.set(name, pending);
  }
  const reason = await pending;
  if (reason === null) return { skip: false };
  const message = `${name} unavailable (${reason}); start it with: ${HOW_TO_START[name]}`;
  if (servicesRequired()) {
    throw new ServiceUnavailableError(`${message}. LIFEGUARD_REQUIRE_SERVICES is set, so this fails instead of skipping`);
  }
  return { skip: `${message} (set LIFEGUARD_REQUIRE_SERVICES=1 to make this a failure)` };
}
