/** Creation and backoff: when to call factory.create, its deadline, withdrawals, retries with jitter, and ready(). */
import { settle } from '../internal/call.js';
import type { TimerHandle } from '../internal/clock.js';
import type { PoolCore } from './core.js';
import { describe } from '../internal/options.js';
import { CreateTimeoutError, CreateUnwantedError, InvalidOptionError } from './errors.js';
import type { CreateContext } from './options.js';
import { EntryState, NO_GUARD, PoolEntry, type LendGuard } from './pool-entry.js';

/** Errors a factory marked permanent (CreateContext.permanent). */
const permanentErrors = new WeakSet<object>();

function markPermanent<E>(error: E): E {
  if ((typeof error === 'object' && error !== null) || typeof error === 'function') permanentErrors.add(error);
  return error;
}

interface CreateAttempt<T> {
  readonly controller: AbortController;
  /** Aborted when no waiter needs this creation any more (CreateContext.unwanted). */
  readonly unwanted: AbortController;
  readonly startedAt: number;
  timer: TimerHandle | null;
  /** Creation already counted as failed (timed out, or the pool was destroyed). */
  abandoned: boolean;
  /** The resource was reported broken (invalidate or revoke) before its creation finished. */
  invalidated: { reason: unknown } | null;
  /** Registered by the factory (CreateContext.guard) before its resource exists. */
  guard: LendGuard;
  entry: PoolEntry<T> | null;
}

/** The creations in flight and the retry state of one pool. */
export class Creation<T> {
  readonly #core: PoolCore<T>;
  readonly #attempts = new Set<CreateAttempt<T>>();
  #entrySeq = 0;
  consecutiveFailures = 0;
  lastError: unknown = undefined;
  /** The last creation failed with an error marked permanent; cleared by the next success. */
  permanentError: unknown = undefined;
  #backoffUntil = -Infinity;
  #backoffTimer: TimerHandle | null = null;
  /** Whether the backoff timer keeps the process alive (someone awaits the retry). */
  #backoffRef = false;
  #minReached = false;
  #ready: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;

  constructor(core: PoolCore<T>) {
    this.#core = core;
    if (core.o.min === 0) this.#minReached = true;
  }

  /** Creations in flight. */
  get size(): number {
    return this.#attempts.size;
  }

  /** Resolves once `min` resources exist; rejects with the creation error if the first attempt to get there fails. */
  ready(closedError: () => Error): Promise<void> {
    if (!this.#core.isOpen()) return Promise.reject(closedError());
    if (this.#minReached) return Promise.resolve();
    if (this.#ready === null) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#ready = { promise, resolve, reject };
      this.refBackoff();
    }
    return this.#ready.promise;
  }

  /** Starts the creations waiters and `min` need, within `max`, `maxConcurrentCreates` and the backoff. */
  maybeCreate(): void {
    const core = this.#core;
    if (!core.isOpen()) return;
    const o = core.o;
    const creating = this.#attempts.size;
    const supply = creating + core.validatingForQueue + core.resetting;
    // HikariCP's elision: create only for waiters not already covered by creations in flight or
    // validations about to finish, and for `min`.
    // After a permanent failure one creation keeps retrying (with backoff) even with nobody waiting,
    // so the pool heals once the cause is fixed.
    let wanted = Math.max(core.queue.pending - supply, o.min - core.all.size - creating, this.permanentError === undefined ? 0 : 1 - creating);
    if (wanted <= 0 || core.all.size + creating >= o.max || creating >= o.maxConcurrentCreates) return;
    if (core.now() < this.#backoffUntil) return; // the backoff timer pumps again when it ends
    while (wanted-- > 0 && core.all.size + this.#attempts.size < o.max && this.#attempts.size < o.maxConcurrentCreates) {
      this.#start();
    }
  }

  #start(): void {
    const core = this.#core;
    const o = core.o;
    const attempt: CreateAttempt<T> = {
      controller: new AbortController(),
      unwanted: new AbortController(),
      startedAt: core.now(),
      timer: null,
      abandoned: false,
      invalidated: null,
      guard: NO_GUARD,
      entry: null,
    };
    this.#attempts.add(attempt);
    if (o.createTimeoutMs !== Infinity) {
      attempt.timer = core.clock.setTimeout(() => {
        attempt.timer = null;
        const error = new CreateTimeoutError(`factory.create did not settle within createTimeoutMs=${o.createTimeoutMs} (pool "${o.name}")`);
        attempt.controller.abort(error);
        this.#abandon(attempt, error);
      }, o.createTimeoutMs, true);
    }
    const context: CreateContext = {
      signal: attempt.controller.signal,
      unwanted: attempt.unwanted.signal,
      invalidate: (reason?: unknown) => {
        if (attempt.entry !== null) this.#invalidate(attempt.entry, reason);
        else attempt.invalidated ??= { reason };
      },
      revoke: (reason?: unknown) => {
        if (attempt.entry !== null) this.#revoke(attempt.entry, reason);
        else attempt.invalidated ??= { reason };
      },
      moved: () => {
        if (attempt.entry !== null) this.#moved(attempt.entry);
      },
      permanent: markPermanent,
      guard: (guard: LendGuard) => {
        if (typeof guard !== 'object' || (guard as unknown) === null || typeof guard.validUntil !== 'number') {
          throw new InvalidOptionError('guard', `invalid CreateContext.guard() argument: expected an object with a numeric validUntil, got ${describe(guard)}`);
        }
        // Several guards (the budget's permit and the factory's own): the resource is lendable while all are.
        const previous = attempt.entry === null ? attempt.guard : attempt.entry.guard;
        const combined = previous === NO_GUARD ? guard : { get validUntil() { return Math.min(previous.validUntil, guard.validUntil); } };
        if (attempt.entry !== null) attempt.entry.guard = combined;
        else attempt.guard = combined;
      },
    };
    settle(() => o.factory.create(context)).then(
      (resource) => {
        this.#created(attempt, resource);
      },
      (error: unknown) => {
        if (attempt.abandoned) return;
        // Withdrawn only when it gave up because it was unwanted (the reason itself, or an error it
        // caused, such as the budget's abort): a connect that really failed meanwhile is a failure.
        const reason: unknown = attempt.unwanted.signal.reason;
        if (reason !== undefined && (error === reason || (error as { cause?: unknown } | null)?.cause === reason)) this.#withdraw(attempt);
        else this.#abandon(attempt, error);
      },
    );
  }

  /**
   * Tells creations that nobody needs any more (their waiters were served by other resources, gave up or
   * timed out, and `min` is met), youngest first, through `CreateContext.unwanted`: a factory still
   * waiting in a line (a fleet budget's permit, a connection slot) leaves it rather than keep a place
   * that another process, or another origin, needs.
   */
  shed(): void {
    const core = this.#core;
    if (!core.isOpen()) return;
    const needed = Math.max(0, core.queue.pending - core.validatingForQueue - core.resetting, core.o.min - core.all.size);
    // In start order: the oldest `needed` still-wanted ones stay, the younger ones are told.
    let kept = 0;
    for (const attempt of this.#attempts) {
      if (attempt.unwanted.signal.aborted) continue;
      if (kept < needed) kept++;
      else attempt.unwanted.abort(new CreateUnwantedError(`no waiter needs this creation any more (pool "${core.o.name}": ${core.describeState()})`));
    }
  }

  /** A creation told it was unwanted gave up: not a failure (no backoff); a new one starts if demand came back. */
  #withdraw(attempt: CreateAttempt<T>): void {
    attempt.abandoned = true;
    if (attempt.timer !== null) this.#core.clock.clearTimeout(attempt.timer);
    attempt.timer = null;
    this.#attempts.delete(attempt);
    this.#core.wakeClose();
    this.#core.pump();
  }

  /** A creation failed or timed out: count it, back off, and let the pump retry later. */
  #abandon(attempt: CreateAttempt<T>, error: unknown): void {
    if (attempt.abandoned) return;
    const core = this.#core;
    attempt.abandoned = true;
    if (attempt.timer !== null) core.clock.clearTimeout(attempt.timer);
    attempt.timer = null;
    this.#attempts.delete(attempt);
    core.wakeClose();
    if (!core.isOpen()) return;
    const o = core.o;
    core.counters.createErrors++;
    this.consecutiveFailures++;
    this.lastError = error;
    // Exponential backoff with full jitter: never a busy loop, and a fleet of clients does not retry in step.
    const ceiling = Math.min(o.createRetryMaxDelayMs, o.createRetryInitialDelayMs * 2 ** Math.min(30, this.consecutiveFailures - 1));
    const delay = Math.max(1, Math.round(Math.random() * ceiling));
    this.#backoffUntil = core.now() + delay;
    this.#armBackoff(delay);
    core.signals.createError(error, this.consecutiveFailures, delay);
    if ((typeof error === 'object' && error !== null) || typeof error === 'function' ? permanentErrors.has(error) : false) {
      this.permanentError = error;
      core.failWaiters(error);
    } else {
      this.permanentError = undefined;
    }
    if (this.#ready !== null && !this.#minReached) {
      this.#ready.reject(error);
      this.#ready = null;
    }
  }

  #armBackoff(delay: number): void {
    const core = this.#core;
    if (this.#backoffTimer !== null) core.clock.clearTimeout(this.#backoffTimer);
    // Ref'd while someone awaits the retry (a waiter without a deadline, or ready(), has no other timer
    // keeping the process alive); unref'd when it only refills `min`.
    this.#backoffRef = core.queue.pending > 0 || this.#ready !== null;
    this.#backoffTimer = core.clock.setTimeout(() => {
      // The timer, not a clock comparison, ends the backoff: timers may fire slightly before the clock
      // says they are due (regression: the retry then slipped to the next housekeeping run).
      this.#backoffTimer = null;
      this.#backoffUntil = -Infinity;
      core.pump();
    }, Math.max(1, Math.ceil(delay)), !this.#backoffRef);
  }

  /** Someone started awaiting creation: make a running unref'd backoff keep the process alive. */
  refBackoff(): void {
    if (this.#backoffTimer !== null && !this.#backoffRef) this.#armBackoff(this.#backoffUntil - this.#core.clock.now());
  }

  #created(attempt: CreateAttempt<T>, resource: T): void {
    const core = this.#core;
    const o = core.o;
    const now = core.now();
    const late = attempt.abandoned;
    if (!late) {
      if (attempt.timer !== null) core.clock.clearTimeout(attempt.timer);
      attempt.timer = null;
      this.#attempts.delete(attempt);
    }
    const jitter = o.maxLifetimeJitterMs > 0 ? Math.random() * o.maxLifetimeJitterMs : 0;
    const expiresAt = o.maxLifetimeMs > 0 ? now + o.maxLifetimeMs - jitter : Infinity;
    const entry = new PoolEntry(++this.#entrySeq, core, resource, now, expiresAt);
    entry.guard = attempt.guard;
    attempt.entry = entry;
    // A late arrival (after its create timeout) is adopted if there is room, never silently lost.
    const room = core.all.size + this.#attempts.size < o.max;
    core.add(entry);
    core.counters.created++;
    if (!late) {
      this.consecutiveFailures = 0;
      this.permanentError = undefined;
      this.#backoffUntil = -Infinity;
    }
    core.signals.create(entry, now - attempt.startedAt);
    if (!core.isOpen()) {
      core.destroyEntry(entry, 'closed', undefined);
      core.wakeClose();
      return;
    }
    if (late && !room) {
      core.destroyEntry(entry, 'error', attempt.controller.signal.reason);
      return;
    }
    if (attempt.invalidated !== null) {
      core.destroyEntry(entry, 'error', attempt.invalidated.reason);
      core.pump();
      return;
    }
    core.handOut(entry, now);
    if (!this.#minReached && core.all.size >= o.min) {
      this.#minReached = true;
      this.#ready?.resolve();
      this.#ready = null;
    }
    core.pump();
  }

  /** The factory takes the resource back, from under a lease if need be (CreateContext.revoke). */
  #revoke(entry: PoolEntry<T>, reason: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    entry.revoked = { reason };
    this.#core.destroyEntry(entry, 'error', reason);
    this.#core.wakeClose();
    this.#core.pump();
  }

  /** The resource belongs to another pool now (CreateContext.moved). */
  #moved(entry: PoolEntry<T>): void {
    if (entry.state === EntryState.DESTROYED) return;
    if (entry.state === EntryState.IDLE) {
      this.#core.destroyEntry(entry, 'moved', undefined);
      this.#core.pump();
      return;
    }
    entry.doomed = 'moved';
    entry.doomedCause = undefined;
  }

  /** The resource broke on its own (CreateContext.invalidate). */
  #invalidate(entry: PoolEntry<T>, reason: unknown): void {
    if (entry.state === EntryState.DESTROYED) return;
    if (entry.state === EntryState.IDLE) {
      this.#core.destroyEntry(entry, 'error', reason);
      this.#core.pump();
      return;
    }
    // Lent, validating or resetting: destroyed as soon as whoever holds it is done.
    if (entry.doomed === null) {
      entry.doomed = 'error';
      entry.doomedCause = reason;
    }
  }

  /** Shutdown, step 1: no more retries, ready() rejected, creations in flight told to stop. */
  stop(error: Error): void {
    if (this.#backoffTimer !== null) this.#core.clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = null;
    this.#ready?.reject(error);
    this.#ready = null;
    for (const attempt of this.#attempts) attempt.controller.abort(error);
  }

  /** Shutdown, last step: creations that did not notice the abort are given up (destroyed if they ever arrive); returns how long each ran. */
  abandonAll(error: Error): { runningMs: number }[] {
    const now = this.#core.now();
    const abandoned = [...this.#attempts].map((attempt) => ({ runningMs: now - attempt.startedAt }));
    for (const attempt of [...this.#attempts]) this.#abandon(attempt, error);
    return abandoned;
  }

  /** For the acquire-timeout message: creations in flight and how long the oldest has run (a hung factory). */
  describe(now: number): string[] {
    if (this.#attempts.size === 0) return [];
    let oldest = now;
    for (const attempt of this.#attempts) if (attempt.startedAt < oldest) oldest = attempt.startedAt;
    const n = this.#attempts.size;
    return [`${n} creation${n === 1 ? '' : 's'} running for ${Math.round(now - oldest)} ms${n === 1 ? '' : ' (the oldest)'} (createTimeoutMs=${this.#core.o.createTimeoutMs})`];
  }
}
