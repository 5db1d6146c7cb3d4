/**
 * `lifeguard/ioredis`: pooled ioredis connections, for what needs a connection of its own (MULTI/WATCH
 * transactions, blocking commands, pub/sub, a per-job connection budget). `ioredis` is an optional peer
 * dependency, loaded when this module is imported (never by `lifeguard` itself).
 *
 * ```ts
 * import { createIoredisPool } from 'lifeguard/ioredis';
 * const pool = createIoredisPool({ connection: { host: '127.0.0.1', db: 2 }, max: 8 });
 * const job = await pool.use((redis) => redis.blpop('jobs', 5));
 * ```
 */
import { socketOf } from '../internal/redis-socket.js';
import type { Command, Redis, RedisOptions } from 'ioredis';
import type { Pool } from '../pool/pool.js';
import type { CreateContext, Factory, PoolOptions } from '../pool/options.js';
import {
  ConnectionWatch, adapterPool, closeConnection, connectTimeoutOption, connectWithin, driverOptions, factoryOptions,
  loadDriver, untilAborted, type ConnectOptions,
} from './shared.js';

export { AdapterErrorCodes, ConnectTimeoutError, ConnectionLostError, DriverMissingError, type AdapterErrorCode } from './errors.js';
export type { ConnectOptions } from './shared.js';

const { Redis: RedisClient } = await loadDriver(() => import('ioredis'), 'ioredis', 'lifeguard/ioredis');

/** Options of {@link ioredisFactory}. */
export interface IoredisFactoryOptions extends ConnectOptions {
  /**
   * ioredis options (`host`, `port`, `path`, `db`, `username`, `password`, `tls`, `connectionName`,
   * `commandTimeout`, `keyPrefix`, ...). The adapter owns reconnection: a dead connection must stay dead so
   * the pool replaces it, so `retryStrategy`, `reconnectOnError`, `lazyConnect`, `maxRetriesPerRequest`,
   * `enableOfflineQueue`, `autoResubscribe`, `autoResendUnfulfilledCommands` are rejected, and
   * `connectTimeout` too (use `connectTimeoutMs`). @default `{}` (127.0.0.1:6379, db 0)
   */
  readonly connection?: RedisOptions;
}

/** Options of {@link createIoredisPool}: {@link IoredisFactoryOptions} and every pool option except `factory`. */
export type IoredisPoolOptions = IoredisFactoryOptions & Omit<PoolOptions<Redis>, 'factory'>;

const ADAPTER_KEYS = ['connection', 'connectTimeoutMs'] as const;
const NO_RECONNECT = 'reconnection is disabled so that a dead connection is a dead resource, which the pool replaces';
const MANAGED = {
  retryStrategy: NO_RECONNECT,
  reconnectOnError: NO_RECONNECT,
  lazyConnect: 'the pool decides when to connect',
  maxRetriesPerRequest: NO_RECONNECT,
  enableOfflineQueue: 'a command on a closed connection must fail at once, not wait for a reconnection that never comes',
  autoResubscribe: NO_RECONNECT,
  autoResendUnfulfilledCommands: NO_RECONNECT,
  connectTimeout: 'use connectTimeoutMs',
};

/** Session state the adapter cannot read back from ioredis, followed as commands are sent. */
interface SessionState {
  multi: boolean;
  watching: boolean;
}

function describeRedis(redis: Redis): string {
  const o = redis.options;
  const where = o.path ?? `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
  return `ioredis connection to ${where}${typeof o.connectionName === 'string' ? ` (name ${o.connectionName})` : ''}`;
}

/** Closes the connection now, whatever its state. */
function kill(redis: Redis): void {
  const socket = socketOf(redis);
  // ioredis's disconnect() arms a ref'd 2 s timer that only the socket's 'close' clears: on a socket that
  // already closed (killed by the server) it would hold the process for 2 s. Nothing is left to close then.
  if (socket?.closed === true) return;
  redis.disconnect();
  // disconnect() only half-closes (end()); a server that stopped answering would keep the socket open.
  socket?.destroy();
}

/**
 * Follows MULTI and WATCH on one connection, so that reset sends DISCARD or UNWATCH only when needed (a
 * clean connection costs no round trip on release). Every command, pipelined or not, goes through
 * `sendCommand`.
 */
function trackSession(redis: Redis): SessionState {
  const state: SessionState = { multi: false, watching: false };
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command: Command, ...rest: unknown[]): unknown => {
    switch (command.name) {
      case 'multi':
        state.multi = true;
        break;
      case 'exec':
      case 'discard':
      case 'reset':
        state.multi = false;
        state.watching = false;
        break;
      case 'watch':
        state.watching = true;
        break;
      case 'unwatch':
        state.watching = false;
        break;
      default:
        break;
    }
    return (send as (command: Command, ...rest: unknown[]) => unknown)(command, ...rest);
  };
  return state;
}

/**
 * A pool factory for ioredis connections, for composing your own `new Pool({ factory: ioredisFactory(...) })`.
 * - create: connects (ioredis with its reconnection disabled) under `connectTimeoutMs` and the create's
 *   abort signal (the half-open socket is destroyed on either), and watches the connection: an `error`, an
 *   `end`, or the server closing the socket evicts it at once, idle or lent (`LG_CONNECTION_LOST`).
 * - validate: `PING`, abandoned when the pool's `validateTimeoutMs` passes.
 * - reset: a connection left in MULTI is `DISCARD`ed, WATCHed keys are `UNWATCH`ed, subscriptions are
 *   dropped (`UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE`), and the configured `db` is `SELECT`ed again;
 *   a clean connection costs no round trip.
 * - destroy: a polite `QUIT`, then the socket is destroyed regardless.
 * - socket: the connection's TCP socket, for the doctor.
 */
export function ioredisFactory(options: IoredisFactoryOptions = {}): Factory<Redis> {
  return makeFactory(factoryOptions(options, ADAPTER_KEYS, 'ioredisFactory'));
}

function makeFactory(source: Record<string, unknown>): Factory<Redis> {
  const connection = driverOptions(source, MANAGED, 'lifeguard/ioredis') as RedisOptions;
  const connectTimeoutMs = connectTimeoutOption(source);
  const db = connection.db ?? 0;
  const links = new WeakMap<Redis, { watch: ConnectionWatch; session: SessionState }>();

  const lost = (redis: Redis): void => {
    const gone = links.get(redis)?.watch.lost;
    if (gone != null) throw gone;
  };

  return {
    async create(context: CreateContext): Promise<Redis> {
      const options: RedisOptions = {
        ...connection,
        lazyConnect: true,
        retryStrategy: () => null,
        reconnectOnError: null,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        autoResubscribe: false,
        autoResendUnfulfilledCommands: false,
        // The adapter's own deadline (which also honours the abort signal) replaces ioredis's.
        connectTimeout: 0,
      };
      const redis = new RedisClient(options as RedisOptions & { replyMapping?: 'legacy' });
      // lifeguard/register follows the clients an application opens itself; this one is the pool's.
      Object.defineProperty(redis, Symbol.for('lifeguard.pooled'), { value: true });
      const watch = new ConnectionWatch(() => describeRedis(redis), context.invalidate);
      watch.watchDriver(redis);
      // ioredis rejects a failed connect with a bare "Connection is closed."; the reason (ECONNREFUSED,
      // an AUTH error) came as an 'error' event just before.
      let connectError: unknown;
      const onConnectError = (error: unknown): void => { connectError ??= error; };
      redis.on('error', onConnectError);
      const connect = (): Promise<void> => redis.connect().then(
        () => { redis.off('error', onConnectError); },
        (error: unknown) => {
          redis.off('error', onConnectError);
          throw connectError ?? error;
        },
      );
      await connectWithin(describeRedis(redis), context, connectTimeoutMs, connect, () => {
        watch.closing();
        kill(redis);
      });
      // The socket exists only once connecting started.
      watch.watchSocket(socketOf(redis));
      links.set(redis, { watch, session: trackSession(redis) });
      return redis;
    },

    async destroy(redis: Redis): Promise<void> {
      links.get(redis)?.watch.closing();
      await closeConnection(() => (redis.status === 'ready' ? redis.quit() : Promise.resolve()), () => { kill(redis); });
    },

    async validate(redis: Redis, context): Promise<boolean> {
      lost(redis);
      await untilAborted(redis.ping(), context.signal);
      return true;
    },

    async reset(redis: Redis): Promise<void> {
      lost(redis);
      const link = links.get(redis);
      if (link === undefined) return;
      const { session } = link;
      if (session.multi) await redis.discard();
      else if (session.watching) await redis.unwatch();
      const subscriber = redis.condition?.subscriber;
      if (subscriber) {
        // Channels named explicitly: under RESP3 (ioredis's default protocol) the argument-less forms never
        // settle in ioredis, their replies arriving as pushes.
        const channels = subscriber.channels('subscribe');
        const patterns = subscriber.channels('psubscribe');
        const sharded = subscriber.channels('ssubscribe');
        if (channels.length > 0) await redis.unsubscribe(...channels);
        if (patterns.length > 0) await redis.punsubscribe(...patterns);
        if (sharded.length > 0) await redis.sunsubscribe(...sharded);
        if (redis.condition?.subscriber) throw new Error(`${describeRedis(redis)}: still subscribed after UNSUBSCRIBE, PUNSUBSCRIBE and SUNSUBSCRIBE`);
      }
      if (redis.condition?.select !== db) await redis.select(db);
    },

    socket: socketOf,
  };
}

/**
 * A Lifeguard pool of ioredis connections: {@link ioredisFactory}'s options plus every pool option.
 * Unknown keys are rejected, naming the known ones.
 */
export function createIoredisPool(options: IoredisPoolOptions = {}): Pool<Redis> {
  return adapterPool(options, ADAPTER_KEYS, 'createIoredisPool', makeFactory);
}
