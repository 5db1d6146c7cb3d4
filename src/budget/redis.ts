import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { Alarm } from '../internal/alarm.js';
import { systemClock, type Clock } from '../internal/clock.js';
import { socketOf } from '../internal/redis-socket.js';
import { InvalidOptionError } from '../internal/errors.js';
import { describe, numberOption, rejectUnknownKeys } from '../internal/options.js';
import { BudgetPermit, WaitQueue, budgetKeyOption, budgetStats, type BudgetCounters, clockOption, objectOption, type Budget, type BudgetAcquireOptions, type BudgetStats, type BudgetUsage, type Permit, type Waiter } from './budget.js';
import { BudgetClosedError, BudgetTimeoutError, BudgetUnavailableError } from './errors.js';
import { REFRESH_SCRIPT, RELEASE_SCRIPT, TRY_SCRIPT, USAGE_SCRIPT } from './scripts.js';

export interface RedisBudgetOptions {
  /**
   * Where the budget lives: a `redis://` URL, ioredis options (Sentinel options included: `sentinels`
   * and `name`), or an ioredis client (`Redis` or `Cluster`). The budget always opens two clients of its
   * own (commands, and a subscriber for wake-ups), duplicated from a given client, and closes them in
   * `close()`; a client you pass stays yours. Required.
   */
  readonly redis: string | RedisOptions | Redis | Cluster;
  /** The budget's name. Every process sharing the budget uses the same key and the same `limit`. Required. */
  readonly key: string;
  /** Most permits held at once by the whole fleet. Set it below the remote's hard cap (see docs/budget.md). Required. */
  readonly limit: number;
  /** Lifetime of a permit in Redis, measured on the Redis server's clock; holders extend it while alive. A dead holder's permits come back this long after its last refresh. @default 30000 */
  readonly permitTtlMs?: number;
  /** How often a holder extends all its permits (and waiting tickets) in one round trip. Must leave room for a slow refresh: refreshIntervalMs + commandTimeoutMs < permitTtlMs - lossMarginMs. @default permitTtlMs / 3 */
  readonly refreshIntervalMs?: number;
  /** A permit that could not be refreshed is reported lost this long before Redis could expire it, so its connection is closed before another process can take the permit. @default permitTtlMs / 6 */
  readonly lossMarginMs?: number;
  /** Deadline of one Redis command; past it the command counts as failed (Redis unavailable). @default min(2000, permitTtlMs / 4) */
  readonly commandTimeoutMs?: number;
  /** Default deadline of `acquire()`. @default 30000 */
  readonly acquireTimeoutMs?: number;
  /** Waiters are woken by pub/sub when a permit is released; as a safety net (a lost message, a dead holder's permit expiring) they also re-check at this interval, or when the earliest permit expires if sooner. @default 5000 */
  readonly recheckIntervalMs?: number;
  /**
   * When the budget's keys are missing from Redis (first use, or Redis lost its data in a restart),
   * no new permit is granted until this long after the Redis server started, so that holders still
   * using connections re-register them (or lose them locally) first. A key first used on a server up for
   * longer starts at once. Keys lost on a long-running server (a flush, a failover to a lagging replica)
   * are not protected. 0 disables this protection. @default permitTtlMs
   */
  readonly recoveryGraceMs?: number;
  /**
   * What acquires do while Redis does not answer. `'fail'`: reject at once with `LG_BUDGET_UNAVAILABLE`.
   * `{ capacity: n }`: once Redis has not answered for one `permitTtlMs` (by then every permit it granted
   * has expired or been reported lost by its holder), grant up to `n` permits held by this process without
   * Redis, and register them in Redis as soon as it answers again (those it has no room for are lost).
   * Choose `n` so that processes x n <= limit (see docs/budget.md, "Fallback"). @default 'fail'
   */
  readonly fallback?: 'fail' | { readonly capacity: number };
  /** Called when this process enters fallback (`active: true`) and when it is back on Redis. A warning (`LIFEGUARD_BUDGET_FALLBACK`) is also emitted on entering. */
  readonly onFallback?: (event: BudgetFallbackEvent) => void;
  /** Prefix of the Redis keys and channel: `<prefix>{<key>}:permits` and so on. @default "lifeguard:budget:" */
  readonly keyPrefix?: string;
  /** Time source for this process's timers, for tests (permit expiry always uses the Redis server's clock). @default the system's monotonic clock */
  readonly clock?: Clock;
}

/** A `RedisBudget` entering or leaving fallback (see the `fallback` option). */
export interface BudgetFallbackEvent {
  readonly key: string;
  readonly address: string;
  /** True on entering fallback, false when back on Redis. */
  readonly active: boolean;
  /** How long Redis had not answered (entering), or how long fallback lasted (leaving), ms. */
  readonly ms: number;
  /** Permits this process holds at that moment. */
  readonly held: number;
  /** The last error Redis or the connection gave. */
  readonly error: Error | null;
}

/** This process's view of a Redis budget, with its round trips counted by script. */
export interface RedisBudgetStats extends BudgetStats {
  /** Redis script calls made since construction: `try` (grant), `refresh`, `release`, `usage`. */
  readonly commands: { readonly try: number; readonly refresh: number; readonly release: number; readonly usage: number };
  /** Wake-up messages received from other holders' releases. */
  readonly wakeups: number;
  /** The last error Redis or the connection gave, if any. */
  readonly lastError: Error | null;
  /** Fallback state: whether it is active now, its capacity (null: `'fallback: fail'`), times entered, and permits granted without Redis. */
  readonly fallback: { readonly active: boolean; readonly capacity: number | null; readonly entered: number; readonly granted: number };
}

interface HeldPermit {
  readonly permit: BudgetPermit;
  /**
   * Local monotonic time past which the permit is reported lost unless refreshed: when the last successful
   * refresh (or the grant) was sent + permitTtlMs - lossMarginMs. Mirrored in `permit.validUntil`.
   */
  lossAt: number;
}

interface Script {
  readonly name: 'try' | 'refresh' | 'release' | 'usage';
  readonly source: string;
  readonly sha: string;
}

function script(name: Script['name'], source: string): Script {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  try: script('try', TRY_SCRIPT),
  refresh: script('refresh', REFRESH_SCRIPT),
  release: script('release', RELEASE_SCRIPT),
  usage: script('usage', USAGE_SCRIPT),
};

const KNOWN = new Set(['redis', 'key', 'limit', 'permitTtlMs', 'refreshIntervalMs', 'lossMarginMs', 'commandTimeoutMs', 'acquireTimeoutMs', 'recheckIntervalMs', 'recoveryGraceMs', 'fallback', 'onFallback', 'keyPrefix', 'clock']);

type RedisCtor = new (options: RedisOptions) => Redis;

function isClient(value: unknown): value is Redis | Cluster {
  return typeof value === 'object' && value !== null && typeof (value as { duplicate?: unknown }).duplicate === 'function';
}

function isCluster(value: Redis | Cluster): value is Cluster {
  return (value as { isCluster?: unknown }).isCluster === true;
}

/** Where the budget's Redis is, for messages: `host:port`, a socket path, the Sentinel set, or the cluster's seed nodes. */
function addressOf(client: Redis | Cluster): string {
  if (isCluster(client)) {
    const nodes = (client as unknown as { startupNodes?: (string | number | { host?: string; port?: number })[] }).startupNodes ?? [];
    return `cluster ${nodes.map((n) => (typeof n === 'object' ? `${n.host ?? '127.0.0.1'}:${n.port ?? 6379}` : String(n))).join(',')}`;
  }
  const o = client.options;
  // ioredis defaults `sentinels` to null, whatever its type says.
  const sentinels = (o.sentinels as typeof o.sentinels | null) ?? [];
  if (sentinels.length > 0) {
    return `sentinel "${o.name ?? 'mymaster'}" via ${sentinels.map((n) => `${n.host ?? '127.0.0.1'}:${n.port ?? 26379}`).join(',')}`;
  }
  return o.path !== undefined && o.path !== '' ? o.path : `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * A budget shared by every process of a fleet through Redis (ioredis), with the same interface as
 * `InProcessBudget`. Permits live in a sorted set scored by their expiry on the Redis server's clock;
 * this process extends all of its permits in one round trip every `refreshIntervalMs` on one unref'd
 * timer, and reports a permit lost `lossMarginMs` before Redis could hand it to someone else when it
 * cannot. Waiters queue in Redis in arrival order and are woken by pub/sub. See docs/budget.md.
 */
export class RedisBudget implements Budget {
  readonly key: string;
  readonly limit: number;
  /** `host:port` or socket path of the Redis server, as shown in errors. */
  readonly address: string;
  /** This process's holder id: its permits in Redis are named `<holderId>:<n>`. */
  readonly holderId: string;
  readonly #ttl: number;
  readonly #refreshMs: number;
  readonly #marginMs: number;
  readonly #commandTimeoutMs: number;
  readonly #acquireTimeoutMs: number;
  readonly #recheckMs: number;
  readonly #graceMs: number;
  readonly #clock: Clock;
  readonly #keys: readonly string[];
  readonly #channel: string;
  readonly #holder: string;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #queue: WaitQueue;
  readonly #held = new Map<string, HeldPermit>();
  readonly #inflight = new Set<Promise<unknown>>();
  #pendingRelease: string[] = [];
  #seq = 0;
  /** The one timer: refreshes, losses, re-checks (unref'd: holding permits is background work; a caller awaiting an acquire has its own deadline). */
  readonly #alarm: Alarm;
  #nextRefreshAt = Infinity;
  #nextRecheckAt = Infinity;
  #refreshing = false;
  #trying = false;
  #tryAgain = false;
  #closed = false;
  #closePromise: Promise<void> | null = null;
  #readyWait: Promise<void> | null = null;
  #lastError: Error | null = null;
  #fleet = { held: 0, waiting: 0 };
  /** When #fleet was read (local clock), or null before the first round trip. */
  #fleetSeenAt: number | null = null;
  #wakeups = 0;
  readonly #fallbackCapacity: number | null;
  readonly #onFallback: ((event: BudgetFallbackEvent) => void) | undefined;
  /** Send time of the first round trip that failed since the last one that succeeded; null while Redis answers. */
  #failingSince: number | null = null;
  /** Fallback active since (local clock), or null. */
  #fallbackSince: number | null = null;
  readonly #fallbackStats = { entered: 0, granted: 0 };
  readonly #counters: BudgetCounters = { acquired: 0, released: 0, lost: 0, unavailable: 0 };
  readonly #commands = { try: 0, refresh: 0, release: 0, usage: 0 };

  constructor(options: RedisBudgetOptions) {
    const source = objectOption(options, 'RedisBudget');
    rejectUnknownKeys(source, KNOWN, 'RedisBudget');
    const redis = source['redis'];
    if (typeof redis !== 'string' && !isClient(redis) && (typeof redis !== 'object' || redis === null || Array.isArray(redis))) {
      throw new InvalidOptionError('redis', `invalid option "redis": expected a redis:// URL, ioredis options or an ioredis client, got ${describe(redis)}`);
    }
    if (source['key'] === undefined) throw new InvalidOptionError('key', 'invalid option "key": required (the name every process sharing the budget uses), got undefined');
    this.key = budgetKeyOption(source, undefined);
    if (source['limit'] === undefined) throw new InvalidOptionError('limit', 'invalid option "limit": required (the most permits the fleet may hold at once), got undefined');
    this.limit = numberOption(source, 'limit', 0, { integer: true, min: 1 });
    this.#ttl = numberOption(source, 'permitTtlMs', 30_000, { integer: true, min: 100 });
    this.#refreshMs = numberOption(source, 'refreshIntervalMs', Math.floor(this.#ttl / 3), { min: 1 });
    this.#marginMs = numberOption(source, 'lossMarginMs', Math.floor(this.#ttl / 6), { min: 0 });
    this.#commandTimeoutMs = numberOption(source, 'commandTimeoutMs', Math.min(2000, Math.floor(this.#ttl / 4)), { integer: true, min: 1 });
    if (this.#marginMs >= this.#ttl) {
      throw new InvalidOptionError('lossMarginMs', `invalid option "lossMarginMs": must be < permitTtlMs (${this.#ttl}), got number ${this.#marginMs}`);
    }
    if (this.#refreshMs + this.#commandTimeoutMs >= this.#ttl - this.#marginMs) {
      const which = source['refreshIntervalMs'] !== undefined ? 'refreshIntervalMs' : source['commandTimeoutMs'] !== undefined ? 'commandTimeoutMs' : 'permitTtlMs';
      throw new InvalidOptionError(which, `invalid option "${which}": a refresh must land before a permit is reported lost, so refreshIntervalMs + commandTimeoutMs (${this.#refreshMs} + ${this.#commandTimeoutMs}) must be < permitTtlMs - lossMarginMs (${this.#ttl} - ${this.#marginMs})`);
    }
    this.#acquireTimeoutMs = numberOption(source, 'acquireTimeoutMs', 30_000, { min: 1, allowInfinity: true });
    this.#recheckMs = numberOption(source, 'recheckIntervalMs', 5000, { min: 10 });
    this.#graceMs = numberOption(source, 'recoveryGraceMs', this.#ttl, { integer: true, min: 0 });
    this.#fallbackCapacity = fallbackOption(source['fallback'], this.limit);
    const onFallback = source['onFallback'];
    if (onFallback !== undefined && typeof onFallback !== 'function') throw new InvalidOptionError('onFallback', `invalid option "onFallback": expected a function, got ${describe(onFallback)}`);
    this.#onFallback = onFallback as ((event: BudgetFallbackEvent) => void) | undefined;
    const prefix = source['keyPrefix'] ?? 'lifeguard:budget:';
    if (typeof prefix !== 'string') throw new InvalidOptionError('keyPrefix', `invalid option "keyPrefix": expected a string, got ${describe(prefix)}`);
    this.#clock = clockOption(source) ?? systemClock;
    this.#alarm = new Alarm(this.#clock, () => {
      this.#tick();
    }, true);

    const base = `${prefix}{${this.key}}:`;
    this.#keys = [`${base}permits`, `${base}queue`, `${base}tickets`, `${base}seq`, `${base}wake`, `${base}fence`, `${base}master`];
    this.#channel = `${base}wake`;
    this.#holder = randomBytes(8).toString('hex');
    this.holderId = this.#holder;
    this.#queue = new WaitQueue(this.key, this.#clock, {
      timeoutError: (waiter, now) => new BudgetTimeoutError(this.key, {
        limit: this.limit,
        held: this.#fleet.held,
        waiting: this.#fleet.waiting,
        heldHere: this.#held.size,
        seenAgoMs: this.#fleetSeenAt === null ? null : now - this.#fleetSeenAt,
        waitedMs: now - waiter.enqueuedAt,
      }, this.#failingSince === null ? undefined : `Redis at ${this.address} has not answered for ${Math.round(now - this.#failingSince)} ms (${this.#lastError?.message ?? 'no answer'})${this.#fallbackCapacity === null ? '' : this.#fallbackSince === null ? `; fallback (capacity ${this.#fallbackCapacity}) starts once it has not answered for permitTtlMs=${this.#ttl}` : `; in fallback, this process's capacity ${this.#fallbackCapacity} is in use`}`),
      left: (waiter) => {
        // Its ticket may be in line, or a grant may be on its way: withdraw both (same id) in Redis.
        this.#release(waiter.id);
      },
    });

    const common: RedisOptions = {
      lazyConnect: false,
      keyPrefix: '',
      connectionName: `lifeguard-budget-${this.#holder}`,
      // Reconnect quickly at first, then every second: waiters and refreshes need Redis back soon.
      retryStrategy: (times: number) => Math.min(1000, 25 * 2 ** Math.min(times, 10)) + Math.floor(Math.random() * 50),
      // A master demoted by a failover answers writes with READONLY: reconnect (through Sentinel, to the
      // new master) rather than keep failing; the command itself is not resent (the budget retries).
      reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? 1 : false),
    };
    // Commands fail at once while disconnected (no offline queue) and after commandTimeoutMs: the
    // budget decides what a failure means (an acquire fails, a refresh is retried, a permit is lost).
    const commandOptions: RedisOptions = { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: this.#commandTimeoutMs };
    // The subscriber resubscribes itself after a reconnect (see below): ioredis's own resubscribe has no
    // handler on its command, and a close() right after a reconnect turned it into an unhandled rejection.
    const subscriberOptions: RedisOptions = { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, autoResubscribe: false };
    if (isClient(redis) && isCluster(redis)) {
      // One slot holds every key of the budget (the {key} hash tag), so every script runs on one master.
      // Typed as Redis: the budget uses only what Redis and Cluster share (scripts, pub/sub, status, events).
      const cluster = redis as unknown as { duplicate(nodes: readonly unknown[], options: Record<string, unknown>): Redis };
      // Per-node options without what the cluster decides itself (retries, offline queue).
      const node = ({ retryStrategy: _retry, enableOfflineQueue: _queue, ...rest }: RedisOptions): Record<string, unknown> => ({ ...rest });
      const clusterOptions = { keyPrefix: '', lazyConnect: false, clusterRetryStrategy: common.retryStrategy };
      this.#cmd = cluster.duplicate([], { ...clusterOptions, enableOfflineQueue: false, redisOptions: node(commandOptions) });
      this.#sub = cluster.duplicate([], { ...clusterOptions, enableOfflineQueue: true, redisOptions: node(subscriberOptions) });
    } else if (isClient(redis)) {
      this.#cmd = (redis as Redis).duplicate(commandOptions);
      this.#sub = (redis as Redis).duplicate(subscriberOptions);
    } else {
      const Ctor = loadIoredis();
      const given: RedisOptions = typeof redis === 'string' ? parseUrl(redis) : redis;
      this.#cmd = new Ctor({ ...given, ...commandOptions });
      this.#sub = new Ctor({ ...given, ...subscriberOptions });
    }
    this.address = addressOf(this.#cmd);
    const onError = (error: Error): void => {
      this.#lastError = error;
    };
    this.#cmd.on('error', onError);
    // Load the scripts first thing on every (re)connection: a NOSCRIPT fallback would reorder calls.
    this.#cmd.on('ready', () => {
      for (const s of Object.values(SCRIPTS)) {
        this.#cmd.script('LOAD', s.source).catch((error: unknown) => {
          this.#lastError = toError(error);
        });
      }
      // Back after an outage: re-register (refresh) and serve waiters now, not at the next timer.
      if (this.#failingSince !== null && !this.#closed) {
        this.#nextRefreshAt = this.#clock.now();
        this.#refresh();
        if (this.#queue.length > 0) this.#try();
      }
    });
    this.#sub.on('error', onError);
    this.#sub.on('message', (channel: string) => {
      if (channel !== this.#channel) return;
      this.#wakeups++;
      if (this.#queue.length > 0) this.#try();
    });
    // After a reconnect: subscribe again, and look again, since anything released while the subscriber
    // was away went unheard.
    let subscribedBefore = false;
    this.#sub.on('ready', () => {
      if (subscribedBefore) {
        this.#subscribe();
        if (this.#queue.length > 0) this.#try();
      }
      subscribedBefore = true;
    });
    this.#subscribe();
  }

  #subscribe(): void {
    this.#sub.subscribe(this.#channel).catch((error: unknown) => {
      this.#lastError = toError(error);
    });
  }

  acquire(options?: BudgetAcquireOptions): Promise<Permit> {
    if (this.#closed) return Promise.reject(new BudgetClosedError(this.key, `budget "${this.key}" is closed: cannot acquire a permit`));
    return this.#queue.enqueue(`${this.#holder}:${++this.#seq}`, options, this.#acquireTimeoutMs, () => {
      this.#try();
    });
  }

  stats(): RedisBudgetStats {
    return {
      ...budgetStats(this, this.#held.size, this.#queue, this.#counters, this.#closed, this.#fleetView()),
      commands: { ...this.#commands },
      wakeups: this.#wakeups,
      lastError: this.#lastError,
      fallback: { active: this.#fallbackSince !== null, capacity: this.#fallbackCapacity, entered: this.#fallbackStats.entered, granted: this.#fallbackStats.granted },
    };
  }

  async usage(): Promise<BudgetUsage> {
    if (this.#closed) throw new BudgetClosedError(this.key, `budget "${this.key}" is closed: cannot read its usage`);
    let reply: unknown;
    try {
      reply = await this.#run(SCRIPTS.usage, []);
    } catch (error) {
      throw this.#unavailable('cannot read usage', error);
    }
    const [, held, waiting] = reply as [number, number, number];
    this.#seeFleet(held, waiting);
    return { key: this.key, limit: this.limit, held, waiting };
  }

  /**
   * Rejects waiters, gives every permit back (each is reported lost to its holder first), waits for the
   * last round trips (each bounded by `commandTimeoutMs`) and closes both Redis connections.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#shutdown();
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  toString(): string {
    return `RedisBudget "${this.key}" at ${this.address} (limit=${this.limit} heldHere=${this.#held.size} waitingHere=${this.#queue.length})`;
  }

  // ---------------------------------------------------------------------------------------------------

  async #shutdown(): Promise<void> {
    this.#closed = true;
    this.#alarm.clear();
    this.#queue.failAll(new BudgetClosedError(this.key, `budget "${this.key}" was closed while waiting for a permit`));
    for (const held of [...this.#held.values()]) this.#lose(held, `budget "${this.key}" was closed while the permit was held`);
    // Round trips in flight may still answer with grants, which are given straight back: wait until
    // nothing is left to send (each round trip is bounded by commandTimeoutMs; nothing new starts now).
    do {
      this.#flushReleases();
      await Promise.allSettled([...this.#inflight]);
      await new Promise((resolve) => setImmediate(resolve));
    } while (this.#inflight.size > 0 || this.#pendingRelease.length > 0);
    await Promise.all([disconnect(this.#cmd), disconnect(this.#sub)]);
  }

  /** Runs a script (EVALSHA, loading it with EVAL the first time), counting the round trip. */
  async #run(s: Script, args: readonly (string | number)[]): Promise<unknown> {
    this.#commands[s.name]++;
    const sentAt = this.#clock.now();
    const work = (async () => {
      await this.#whenReady();
      try {
        return await this.#cmd.evalsha(s.sha, this.#keys.length, ...this.#keys, this.limit, this.#ttl, this.#ttl, this.#graceMs, ...args);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return await this.#cmd.eval(s.source, this.#keys.length, ...this.#keys, this.limit, this.#ttl, this.#ttl, this.#graceMs, ...args);
      }
    })();
    this.#inflight.add(work);
    try {
      const reply = await work;
      this.#answered();
      return reply;
    } catch (error) {
      this.#lastError = toError(error);
      this.#failingSince ??= sentAt;
      throw error;
    } finally {
      this.#inflight.delete(work);
    }
  }

  /**
   * Resolves once the command connection is ready: at once when it is, else within commandTimeoutMs
   * (the first connect, a reconnect in progress), else rejects with the last connection error.
   */
  #whenReady(): Promise<void> {
    const client = this.#cmd;
    if (client.status === 'ready') return Promise.resolve();
    // A cluster passes through 'close' between its connection attempts: only 'end' is final there.
    if (client.status === 'end' || (client.status === 'close' && !isCluster(client))) return Promise.reject(this.#lastError ?? new Error(`the connection is ${client.status}`));
    // One wait shared by every caller, so an outage never piles up listeners.
    this.#readyWait ??= new Promise<void>((resolve, reject) => {
      const finish = (error: Error | null): void => {
        clearTimeout(timer);
        client.removeListener('ready', onReady);
        client.removeListener('end', onEnd);
        this.#readyWait = null;
        if (error === null) resolve();
        else reject(error);
      };
      const onReady = (): void => {
        finish(null);
      };
      const onEnd = (): void => {
        finish(this.#lastError ?? new Error('the connection ended'));
      };
      const timer = setTimeout(() => {
        finish(this.#lastError ?? new Error(`not connected within commandTimeoutMs=${this.#commandTimeoutMs} (status ${client.status})`));
      }, this.#commandTimeoutMs);
      client.once('ready', onReady);
      client.once('end', onEnd);
    });
    return this.#readyWait;
  }

  #unavailable(what: string, error: unknown): BudgetUnavailableError {
    const cause = this.#cmd.status === 'ready' ? error : (this.#lastError ?? error);
    return new BudgetUnavailableError(this.key, this.address, `${what} (connection ${this.#cmd.status})`, { cause });
  }

  /** One round trip for every local waiter, in arrival order. Calls made while one is in flight coalesce. */
  #try(): void {
    if (this.#closed) return;
    if (this.#trying) {
      this.#tryAgain = true;
      return;
    }
    const batch = this.#queue.list();
    if (batch.length === 0) return;
    if (this.#fallbackSince !== null && this.#cmd.status !== 'ready') {
      // In fallback and Redis still away: no round trip to wait for.
      this.#grantLocally();
      return;
    }
    this.#trying = true;
    const sentAt = this.#clock.now();
    this.#nextRecheckAt = sentAt + this.#recheckMs;
    this.#run(SCRIPTS.try, batch.map((w) => w.id)).then(
      (reply) => {
        this.#granted(batch, reply as number[], sentAt);
      },
      (error: unknown) => {
        if (this.#fallbackCapacity !== null) {
          // Waiters wait (up to their deadlines) for Redis, or for fallback to start.
          this.#maybeEnterFallback();
          if (this.#fallbackSince !== null) this.#grantLocally();
          else this.#nextRecheckAt = Math.min(this.#nextRecheckAt, this.#clock.now() + Math.max(50, this.#refreshMs / 2));
          return;
        }
        // Redis is unreachable: fail fast with a clear error rather than hang until the deadline.
        const failure = this.#unavailable('cannot acquire a permit', error);
        for (const waiter of batch) {
          if (waiter.settled) continue;
          this.#counters.unavailable++;
          this.#queue.fail(waiter, failure);
        }
      },
    ).finally(() => {
      this.#trying = false;
      if (this.#tryAgain) {
        this.#tryAgain = false;
        this.#try();
      }
      this.#arm();
    });
  }

  #granted(batch: readonly Waiter[], reply: readonly number[], sentAt: number): void {
    const [serverNow = 0, held = 0, waiting = 0, nextAt = -1] = reply;
    this.#seeFleet(held, waiting);
    let stillWaiting = false;
    for (const [i, waiter] of batch.entries()) {
      if (reply[4 + i] !== 1) {
        waiter.queued = true;
        if (!waiter.settled) stillWaiting = true;
        continue;
      }
      const permit = this.#newPermit(waiter.id);
      if (this.#closed || !this.#queue.grant(waiter, permit)) {
        // The waiter left while the grant was on its way: give the permit straight back.
        this.#release(waiter.id);
        continue;
      }
      const held = { permit, lossAt: 0 };
      this.#setLossAt(held, sentAt + this.#ttl - this.#marginMs);
      this.#held.set(permit.id, held);
      this.#counters.acquired++;
    }
    if (stillWaiting && nextAt > 0) {
      // A dead holder's permit frees itself when it expires, and a recovery grace ends, without any
      // message: look again then, at the earliest expiry Redis holds (kill -9 of a holder: its permits
      // come back within permitTtlMs). Counted from the reply's arrival, not from the send: Redis read
      // its clock after the request's trip, so from the send the recheck would come early by that trip,
      // find nothing expired and cost another round trip; from the arrival it comes at most one reply's
      // trip after the expiry.
      this.#nextRecheckAt = Math.min(this.#nextRecheckAt, this.#clock.now() + Math.max(10, nextAt - serverNow + 5));
    }
    this.#nextRefreshAt = Math.min(this.#nextRefreshAt, sentAt + this.#refreshMs);
  }

  /** Extends every permit and ticket of this process in one round trip. */
  #refresh(): void {
    if (this.#refreshing || this.#closed) return;
    const permits = [...this.#held.values()];
    const tickets = this.#queue.list().filter((w) => w.queued).map((w) => w.id);
    const sentAt = this.#clock.now();
    this.#nextRefreshAt = sentAt + this.#refreshMs;
    if (permits.length === 0 && tickets.length === 0) {
      this.#nextRefreshAt = Infinity;
      return;
    }
    this.#refreshing = true;
    this.#run(SCRIPTS.refresh, [permits.length, ...permits.map((h) => h.permit.id), ...tickets]).then(
      (reply) => {
        const [, lostPermits, lostTickets, held, waiting] = reply as [number, string[], string[], number, number];
        this.#seeFleet(held, waiting);
        const gone = new Set(lostPermits);
        for (const held of permits) {
          if (this.#held.get(held.permit.id) !== held) continue;
          if (gone.has(held.permit.id)) this.#lose(held, `permit ${held.permit.id} of budget "${this.key}" was gone from Redis when refreshed (expired after a stall longer than permitTtlMs=${this.#ttl}, or lost by Redis) and the budget is full: another process may hold it now`);
          else this.#setLossAt(held, sentAt + this.#ttl - this.#marginMs);
        }
        if (lostTickets.length > 0) {
          // Our place in line expired (a stall): join again at the back.
          const lost = new Set(lostTickets);
          for (const waiter of this.#queue.list()) if (lost.has(waiter.id)) waiter.queued = false;
          this.#try();
        }
      },
      () => {
        // Try again soon: every permit is lost at its lossAt unless a refresh lands first.
        this.#nextRefreshAt = this.#clock.now() + Math.max(50, Math.min(this.#refreshMs, this.#commandTimeoutMs) / 2);
      },
    ).finally(() => {
      this.#refreshing = false;
      this.#arm();
    });
  }

  /**
   * The one place a permit's deadline moves. `permit.validUntil` is what a holder checks before each use:
   * after a stall, I/O callbacks can run before any timer, so the loss timer alone would come too late.
   */
  #setLossAt(held: HeldPermit, at: number): void {
    held.lossAt = at;
    held.permit.validUntil = at;
  }

  #seeFleet(held: number, waiting: number): void {
    this.#fleet = { held, waiting };
    this.#fleetSeenAt = this.#clock.now();
  }

  #fleetView(): { held: number; waiting: number; ageMs: number | null } {
    return { ...this.#fleet, ageMs: this.#fleetSeenAt === null ? null : this.#clock.now() - this.#fleetSeenAt };
  }

  #newPermit(id: string): BudgetPermit {
    return new BudgetPermit(id, this.key, (p) => {
      if (!this.#held.delete(p.id)) return;
      this.#counters.released++;
      this.#release(p.id);
      // In fallback, a release frees local capacity: nobody publishes a wake-up for it.
      if (this.#fallbackSince !== null && this.#queue.length > 0) this.#try();
    });
  }

  /** Enters fallback once Redis has not answered for one permit TTL (every permit it granted has expired by then). */
  #maybeEnterFallback(): void {
    if (this.#fallbackCapacity === null || this.#fallbackSince !== null || this.#failingSince === null || this.#closed) return;
    const now = this.#clock.now();
    if (now < this.#failingSince + this.#ttl) return;
    this.#fallbackSince = now;
    this.#fallbackStats.entered++;
    const event: BudgetFallbackEvent = { key: this.key, address: this.address, active: true, ms: Math.round(now - this.#failingSince), held: this.#held.size, error: this.#lastError };
    process.emitWarning(`budget "${this.key}": Redis at ${this.address} has not answered for ${event.ms} ms (${this.#lastError?.message ?? 'no answer'}); in fallback: this process grants itself up to ${this.#fallbackCapacity} permits until Redis answers`, { code: 'LIFEGUARD_BUDGET_FALLBACK' });
    this.#emitFallback(event);
  }

  #emitFallback(event: BudgetFallbackEvent): void {
    try {
      this.#onFallback?.(event);
    } catch (error) {
      process.emitWarning(`budget "${this.key}": the onFallback listener threw: ${toError(error).message}`, { code: 'LIFEGUARD_LISTENER' });
    }
  }

  /** A round trip succeeded: Redis answers again. Fallback permits are re-registered by the refresh this starts. */
  #answered(): void {
    if (this.#failingSince === null) return;
    this.#failingSince = null;
    if (this.#fallbackSince === null) return;
    const now = this.#clock.now();
    const event: BudgetFallbackEvent = { key: this.key, address: this.address, active: false, ms: Math.round(now - this.#fallbackSince), held: this.#held.size, error: null };
    this.#fallbackSince = null;
    this.#nextRefreshAt = now;
    queueMicrotask(() => {
      this.#refresh();
      this.#arm();
    });
    this.#emitFallback(event);
  }

  /** Fallback: grants waiters, first come first served, while this process holds fewer than its capacity. */
  #grantLocally(): void {
    const capacity = this.#fallbackCapacity ?? 0;
    let waiter;
    while (!this.#closed && this.#held.size < capacity && (waiter = this.#queue.first()) !== undefined) {
      const permit = this.#newPermit(waiter.id);
      if (!this.#queue.grant(waiter, permit)) continue;
      // Valid for as long as fallback lasts; the refresh after Redis answers registers it (or loses it).
      this.#held.set(permit.id, { permit, lossAt: Infinity });
      this.#counters.acquired++;
      this.#fallbackStats.granted++;
    }
  }

  /**
   * Reports a permit lost. `goneAt` (a refresh that did not land: the permit is still counted in Redis
   * until `lossAt + lossMarginMs`) lets its holder finish the current response: the permit is given back in
   * Redis only when the holder releases it (its connection closed), or expires there at `goneAt` at the
   * earliest. Without (gone from Redis, budget closed): given back now, if Redis still counts it.
   */
  #lose(held: HeldPermit, message: string, goneAt = -Infinity): void {
    this.#held.delete(held.permit.id);
    const id = held.permit.id;
    const later = goneAt > this.#clock.now();
    if (held.permit.lose(message, this.#lastError ?? undefined, goneAt, later ? () => { this.#release(id); } : undefined)) this.#counters.lost++;
    // Giving it back before the holder's connection is closed would let another process connect while
    // it is still open, one more than the limit at the remote.
    if (!later) this.#release(id);
  }

  /** Queues an id for the next RELEASE round trip (one per tick of the event loop, for all ids). */
  #release(id: string): void {
    this.#pendingRelease.push(id);
    if (this.#pendingRelease.length === 1) {
      queueMicrotask(() => {
        this.#flushReleases();
      });
    }
  }

  #flushReleases(): void {
    if (this.#pendingRelease.length === 0) return;
    const ids = this.#pendingRelease;
    this.#pendingRelease = [];
    // A failed release is harmless: the permit expires in Redis within permitTtlMs.
    this.#run(SCRIPTS.release, ids).then((reply) => {
      const [, , held, waiting] = reply as [number, number, number, number];
      this.#seeFleet(held, waiting);
    }, () => undefined);
  }

  // ---------------------------------------------------------------------------------------------------
  // The one timer: refreshes, losses, re-checks.

  #arm(): void {
    if (this.#closed) return;
    let at = Infinity;
    if (this.#held.size > 0 || this.#queue.length > 0) {
      if (this.#nextRefreshAt === Infinity) this.#nextRefreshAt = this.#clock.now() + this.#refreshMs;
      at = this.#nextRefreshAt;
    }
    for (const held of this.#held.values()) if (held.lossAt < at) at = held.lossAt;
    if (this.#queue.length > 0 && this.#nextRecheckAt < at) at = this.#nextRecheckAt;
    if (this.#queue.length > 0 && this.#fallbackCapacity !== null && this.#fallbackSince === null && this.#failingSince !== null) at = Math.min(at, this.#failingSince + this.#ttl);
    if (at === Infinity) this.#alarm.clear();
    else this.#alarm.at(at);
  }

  #tick(): void {
    const now = this.#clock.now();
    for (const held of [...this.#held.values()]) {
      if (held.lossAt <= now) {
        this.#lose(held, `permit ${held.permit.id} of budget "${this.key}" could not be refreshed in time (Redis at ${this.address}: ${this.#lastError?.message ?? 'no answer'}); reported lost ${this.#marginMs} ms before Redis may expire it, so its connection must close`, held.lossAt + this.#marginMs);
      }
    }
    if (now >= this.#nextRefreshAt) this.#refresh();
    const entering = this.#fallbackSince === null;
    this.#maybeEnterFallback();
    if (this.#queue.length > 0 && (now >= this.#nextRecheckAt || (entering && this.#fallbackSince !== null))) this.#try();
    this.#arm();
  }
}

function fallbackOption(value: unknown, limit: number): number | null {
  if (value === undefined || value === 'fail') return null;
  const capacity: unknown = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { capacity?: unknown }).capacity : undefined;
  const keys = typeof value === 'object' && value !== null ? Object.keys(value) : [];
  if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 1 || capacity > limit || keys.some((k) => k !== 'capacity')) {
    throw new InvalidOptionError('fallback', `invalid option "fallback": expected 'fail' or { capacity: n } with an integer n from 1 to limit (${limit}), got ${describe(value)}`);
  }
  return capacity;
}

function loadIoredis(): RedisCtor {
  try {
    const mod = createRequire(import.meta.url)('ioredis') as { Redis?: RedisCtor; default?: RedisCtor };
    const Ctor = mod.Redis ?? mod.default;
    if (Ctor === undefined) throw new Error('the module has no Redis export');
    return Ctor;
  } catch (error) {
    throw new InvalidOptionError('redis', `invalid option "redis": a URL or options need the optional peer dependency ioredis (npm install ioredis), which could not be loaded (${toError(error).message}); or pass an ioredis client`);
  }
}

function parseUrl(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidOptionError('redis', `invalid option "redis": expected a redis:// or rediss:// URL, got ${describe(url)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new InvalidOptionError('redis', `invalid option "redis": expected a redis:// or rediss:// URL, got ${describe(url)}`);
  }
  const options: { -readonly [K in keyof RedisOptions]: RedisOptions[K] } = {
    host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: parsed.port === '' ? 6379 : Number(parsed.port),
  };
  if (parsed.username !== '') options.username = decodeURIComponent(parsed.username);
  if (parsed.password !== '') options.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '') options.db = Number(db);
  if (parsed.protocol === 'rediss:') options.tls = {};
  return options;
}

/** The connections under a client: itself, or a cluster's node connections and its subscriber's. */
function connectionsOf(client: Redis): Redis[] {
  if (!isCluster(client)) return [client];
  const cluster = client as unknown as Cluster;
  // ioredis keeps the cluster subscriber's connection private; its socket must go too.
  const subscriber = (cluster as unknown as { subscriber?: { subscriber?: Redis | null } }).subscriber?.subscriber;
  return [...cluster.nodes('all'), ...(subscriber === undefined || subscriber === null ? [] : [subscriber])];
}

/** Closes a client and waits (bounded) until its sockets are gone, so close() leaves no handle. */
function disconnect(client: Redis): Promise<void> {
  if (client.status === 'end') return Promise.resolve();
  const connections = connectionsOf(client);
  const destroy = (): void => {
    for (const connection of connections) socketOf(connection)?.destroy();
  };
  return new Promise<void>((resolve) => {
    // A connection caught in its ready check (reconnecting) outlives the end of its socket: it answers the
    // check, becomes ready and stays open. After a grace its socket is destroyed (see socketOf).
    const grace = setTimeout(destroy, 100);
    const timer = setTimeout(done, 2000);
    function done(): void {
      clearTimeout(grace);
      clearTimeout(timer);
      client.removeListener('end', done);
      if (connections.length === 1 && connections[0] === client) {
        resolve();
        return;
      }
      // A cluster reports its end before its node connections have closed (they only half-close):
      // destroy them and wait (bounded) for their handles to be released.
      const open = connections.filter((c) => c.status !== 'end');
      destroy();
      const bound = setTimeout(resolve, 500);
      void Promise.all(open.map((c) => new Promise((ended) => c.once('end', ended)))).then(() => {
        clearTimeout(bound);
        // Their sockets' handles are released on the next turn of the loop.
        setImmediate(resolve);
      });
    }
    client.once('end', done);
    client.disconnect();
  });
}
