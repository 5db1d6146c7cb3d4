import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import { systemClock, type Clock, type TimerHandle } from '../internal/clock.js';
import { socketOf } from '../internal/redis-socket.js';
import { InvalidOptionError } from '../internal/errors.js';
import { describe, numberOption, rejectUnknownKeys } from '../internal/options.js';
import { BudgetPermit, WaitQueue, budgetKeyOption, budgetStats, type BudgetCounters, clockOption, objectOption, type Budget, type BudgetAcquireOptions, type BudgetStats, type BudgetUsage, type Permit, type Waiter } from './budget.js';
import { BudgetClosedError, BudgetTimeoutError, BudgetUnavailableError } from './errors.js';
import { REFRESH_SCRIPT, RELEASE_SCRIPT, TRY_SCRIPT, USAGE_SCRIPT } from './scripts.js';

export interface RedisBudgetOptions {
  /**
   * Where the budget lives: a `redis://` URL, ioredis options, or an ioredis client. The budget always
   * opens two connections of its own (commands, and a subscriber for wake-ups), duplicated from a given
   * client, and closes them in `close()`; a client you pass stays yours. Required.
   */
  readonly redis: string | RedisOptions | Redis;
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
  /** Prefix of the Redis keys and channel: `<prefix>{<key>}:permits` and so on. @default "lifeguard:budget:" */
  readonly keyPrefix?: string;
  /** Time source for this process's timers, for tests (permit expiry always uses the Redis server's clock). @default the system's monotonic clock */
  readonly clock?: Clock;
}

/** This process's view of a Redis budget, with its round trips counted by script. */
export interface RedisBudgetStats extends BudgetStats {
  /** Redis script calls made since construction: `try` (grant), `refresh`, `release`, `usage`. */
  readonly commands: { readonly try: number; readonly refresh: number; readonly release: number; readonly usage: number };
  /** Permits held fleet-wide and waiters fleet-wide at the last round trip. */
  readonly fleet: { readonly held: number; readonly waiting: number };
  /** Wake-up messages received from other holders' releases. */
  readonly wakeups: number;
  /** The last error Redis or the connection gave, if any. */
  readonly lastError: Error | null;
}

interface HeldPermit {
  readonly permit: BudgetPermit;
  /** Local monotonic time past which the permit is reported lost unless refreshed. */
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

const KNOWN = new Set(['redis', 'key', 'limit', 'permitTtlMs', 'refreshIntervalMs', 'lossMarginMs', 'commandTimeoutMs', 'acquireTimeoutMs', 'recheckIntervalMs', 'recoveryGraceMs', 'keyPrefix', 'clock']);

type RedisCtor = new (options: RedisOptions) => Redis;

function isClient(value: unknown): value is Redis {
  return typeof value === 'object' && value !== null && typeof (value as { duplicate?: unknown }).duplicate === 'function';
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
  #timer: TimerHandle | null = null;
  #timerAt = Infinity;
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
  #wakeups = 0;
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
    const prefix = source['keyPrefix'] ?? 'lifeguard:budget:';
    if (typeof prefix !== 'string') throw new InvalidOptionError('keyPrefix', `invalid option "keyPrefix": expected a string, got ${describe(prefix)}`);
    this.#clock = clockOption(source) ?? systemClock;

    const base = `${prefix}{${this.key}}:`;
    this.#keys = [`${base}permits`, `${base}queue`, `${base}tickets`, `${base}seq`, `${base}wake`, `${base}fence`];
    this.#channel = `${base}wake`;
    this.#holder = randomBytes(8).toString('hex');
    this.holderId = this.#holder;
    this.#queue = new WaitQueue(this.key, this.#clock, {
      timeoutError: (waiter, now) => new BudgetTimeoutError(this.key, {
        limit: this.limit,
        held: this.#fleet.held,
        waiting: this.#fleet.waiting,
        heldHere: this.#held.size,
        waitedMs: now - waiter.enqueuedAt,
      }),
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
    };
    // Commands fail at once while disconnected (no offline queue) and after commandTimeoutMs: the
    // budget decides what a failure means (an acquire fails, a refresh is retried, a permit is lost).
    const commandOptions: RedisOptions = { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: this.#commandTimeoutMs };
    // The subscriber resubscribes itself after a reconnect (see below): ioredis's own resubscribe has no
    // handler on its command, and a close() right after a reconnect turned it into an unhandled rejection.
    const subscriberOptions: RedisOptions = { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, autoResubscribe: false };
    if (isClient(redis)) {
      this.#cmd = redis.duplicate(commandOptions);
      this.#sub = redis.duplicate(subscriberOptions);
    } else {
      const Ctor = loadIoredis();
      const given: RedisOptions = typeof redis === 'string' ? parseUrl(redis) : redis;
      this.#cmd = new Ctor({ ...given, ...commandOptions });
      this.#sub = new Ctor({ ...given, ...subscriberOptions });
    }
    const o = this.#cmd.options;
    this.address = o.path !== undefined && o.path !== '' ? o.path : `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
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
      ...budgetStats(this, this.#held.size, this.#queue, this.#counters, this.#closed),
      commands: { ...this.#commands },
      fleet: { ...this.#fleet },
      wakeups: this.#wakeups,
      lastError: this.#lastError,
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
    this.#fleet = { held, waiting };
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
    this.#disarm();
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
      return await work;
    } catch (error) {
      this.#lastError = toError(error);
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
    if (client.status === 'end' || client.status === 'close') return Promise.reject(this.#lastError ?? new Error(`the connection is ${client.status}`));
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
    this.#trying = true;
    const sentAt = this.#clock.now();
    this.#nextRecheckAt = sentAt + this.#recheckMs;
    this.#run(SCRIPTS.try, batch.map((w) => w.id)).then(
      (reply) => {
        this.#granted(batch, reply as number[], sentAt);
      },
      (error: unknown) => {
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
    this.#fleet = { held, waiting };
    let stillWaiting = false;
    for (const [i, waiter] of batch.entries()) {
      if (reply[4 + i] !== 1) {
        waiter.queued = true;
        if (!waiter.settled) stillWaiting = true;
        continue;
      }
      const permit = new BudgetPermit(waiter.id, this.key, (p) => {
        if (!this.#held.delete(p.id)) return;
        this.#counters.released++;
        this.#release(p.id);
      });
      if (this.#closed || !this.#queue.grant(waiter, permit)) {
        // The waiter left while the grant was on its way: give the permit straight back.
        this.#release(waiter.id);
        continue;
      }
      this.#held.set(permit.id, { permit, lossAt: sentAt + this.#ttl - this.#marginMs });
      this.#counters.acquired++;
    }
    if (stillWaiting && nextAt > 0) {
      // A dead holder's permit frees itself when it expires, and a recovery grace ends, without any
      // message: look again then.
      this.#nextRecheckAt = Math.min(this.#nextRecheckAt, sentAt + Math.max(10, nextAt - serverNow + 5));
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
        const [, lostPermits, lostTickets] = reply as [number, string[], string[]];
        const gone = new Set(lostPermits);
        for (const held of permits) {
          if (this.#held.get(held.permit.id) !== held) continue;
          if (gone.has(held.permit.id)) this.#lose(held, `permit ${held.permit.id} of budget "${this.key}" was gone from Redis when refreshed (expired after a stall longer than permitTtlMs=${this.#ttl}, or lost by Redis) and the budget is full: another process may hold it now`);
          else held.lossAt = sentAt + this.#ttl - this.#marginMs;
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

  #lose(held: HeldPermit, message: string): void {
    this.#held.delete(held.permit.id);
    if (held.permit.lose(message, this.#lastError ?? undefined)) this.#counters.lost++;
    // If Redis is back and still counts it, give it back now rather than at its expiry.
    this.#release(held.permit.id);
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
    this.#run(SCRIPTS.release, ids).catch(() => undefined);
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
    if (at === Infinity) {
      this.#disarm();
      return;
    }
    if (this.#timer !== null && this.#timerAt <= at) return;
    this.#disarm();
    this.#timerAt = at;
    // Unref'd: holding permits is background work; a caller awaiting an acquire has its own deadline timer.
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#tick();
    }, Math.max(0, at - this.#clock.now()), true);
  }

  #disarm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  #tick(): void {
    const now = this.#clock.now();
    for (const held of [...this.#held.values()]) {
      if (held.lossAt <= now) {
        this.#lose(held, `permit ${held.permit.id} of budget "${this.key}" could not be refreshed in time (Redis at ${this.address}: ${this.#lastError?.message ?? 'no answer'}); reported lost ${this.#marginMs} ms before Redis may expire it, so its connection must close`);
      }
    }
    if (now >= this.#nextRefreshAt) this.#refresh();
    if (this.#queue.length > 0 && now >= this.#nextRecheckAt) this.#try();
    this.#arm();
  }
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

/** Closes a connection and waits (bounded) until its socket is gone, so close() leaves no handle. */
function disconnect(client: Redis): Promise<void> {
  if (client.status === 'end') return Promise.resolve();
  return new Promise<void>((resolve) => {
    // A connection caught in its ready check (reconnecting) outlives the end of its socket: it answers the
    // check, becomes ready and stays open. After a grace its socket is destroyed (see socketOf).
    const grace = setTimeout(() => { socketOf(client)?.destroy(); }, 100);
    const timer = setTimeout(done, 2000);
    function done(): void {
      clearTimeout(grace);
      clearTimeout(timer);
      client.removeListener('end', done);
      resolve();
    }
    client.once('end', done);
    client.disconnect();
  });
}
