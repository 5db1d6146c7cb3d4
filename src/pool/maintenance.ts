/** Maintenance: idle eviction, lifetimes, keep-alive probes, validation on borrow, reset on return, bounded destroys. */
import { settle } from '../internal/call.js';
import type { Clock } from '../internal/clock.js';
import type { PoolCore } from './core.js';
import { DestroyTimeoutError, ValidationTimeoutError } from './errors.js';
import { EntryState, type PoolEntry } from './pool-entry.js';

/**
 * `work`, or a rejection with `onTimeout()` once `timeoutMs` passes: every factory call the pool waits
 * for is bounded, so no hook can hang it. The timer is unref'd (it guards background work) and cleared
 * as soon as `work` settles.
 */
export function bounded<R>(clock: Clock, work: Promise<R>, timeoutMs: number, onTimeout: () => Error): Promise<R> {
  if (timeoutMs === Infinity) return work;
  return new Promise<R>((resolve, reject) => {
    const timer = clock.setTimeout(() => { reject(onTimeout()); }, timeoutMs, true);
    work.finally(() => {
      clock.clearTimeout(timer);
    }).then(resolve, reject);
  });
}

/** A `factory.destroy` call the pool has started and not yet seen settle. */
export interface Disposal {
  readonly resourceId: number;
  readonly startedAt: number;
}

export class Maintenance<T> {
  readonly #core: PoolCore<T>;
  /** `factory.destroy` calls in flight. */
  readonly destroys = new Map<Promise<void>, Disposal>();
  /**
   * Entries destroyed while another live entry holds the very same resource (a factory that returned one
   * object twice): their `factory.destroy` waits until no live entry holds it, so a resource still lent
   * under another lease is never destroyed.
   */
  readonly #deferred = new Map<unknown, PoolEntry<T>[]>();
  destroyTimeouts = 0;

  constructor(core: PoolCore<T>) {
    this.#core = core;
  }

  /** Idle resources, oldest-idle first: lifetime, then idleness (never below min), then keep-alive. */
  sweepIdle(now: number): void {
    const core = this.#core;
    const o = core.o;
    const idle = core.idle.toArray().sort((a, b) => a.idleSince - b.idleSince);
    // Expiries are mandatory: count them first, so idleness never evicts what `min` then has to recreate.
    let evictable = core.all.size - o.min;
    for (const entry of idle) if (entry.expiresAt <= now) evictable--;
    for (const entry of idle) {
      if (entry.expiresAt <= now) {
        core.destroyEntry(entry, 'lifetime', undefined);
      } else if (entry.guard.validUntil <= now) {
        core.destroyEntry(entry, 'revoked', undefined);
      } else if (o.idleTimeoutMs > 0 && evictable > 0 && now - entry.idleSince >= o.idleTimeoutMs) {
        core.destroyEntry(entry, 'idle', undefined);
        evictable--;
      } else if (o.keepAliveIntervalMs > 0 && now - Math.max(entry.idleSince, entry.checkedAt) >= o.keepAliveIntervalMs) {
        this.#probe(entry);
      }
    }
  }

  needsValidation(entry: PoolEntry<T>, now: number): boolean {
    const o = this.#core.o;
    return o.factory.validate !== undefined && now - Math.max(entry.idleSince, entry.checkedAt) >= o.validateAfterIdleMs;
  }

  /** A keep-alive probe: the resource stays counted as idle, and goes back in idleness order. */
  #probe(entry: PoolEntry<T>): void {
    const core = this.#core;
    core.idle.remove(entry);
    entry.state = EntryState.VALIDATING;
    entry.probing = true;
    core.probing++;
    this.#validate(entry, (ok, error) => {
      // Destroyed meanwhile (revoked, closed): its destroy already stopped counting it.
      if (entry.probing) {
        entry.probing = false;
        core.probing--;
      }
      if (entry.state === EntryState.DESTROYED) {
        core.wakeClose();
        core.pump();
        return;
      }
      const now = core.now();
      if (!ok) this.#failed(entry, error);
      else if (!core.unfit(entry, now)) {
        entry.checkedAt = now;
        // Back in idleness order, so a probe never makes a resource look recently used (LIFO ageing).
        entry.state = EntryState.IDLE;
        core.idle.insertBefore(entry, (other) => other.idleSince > entry.idleSince);
      }
      core.wakeClose();
      core.pump();
    });
  }

  /** Validation on borrow: the resource is supply on its way to the queue. */
  validateForQueue(entry: PoolEntry<T>): void {
    const core = this.#core;
    entry.state = EntryState.VALIDATING;
    core.validatingForQueue++;
    this.#validate(entry, (ok, error) => {
      core.validatingForQueue--;
      const now = core.now();
      if (entry.state !== EntryState.DESTROYED) {
        if (!ok) this.#failed(entry, error);
        else {
          entry.checkedAt = now;
          core.handOut(entry, now);
        }
      }
      core.wakeClose();
      core.pump();
    });
  }

  /** A returned resource is cleaned (factory.reset) before it is lent again. */
  reset(entry: PoolEntry<T>): void {
    const core = this.#core;
    const o = core.o;
    entry.state = EntryState.RESETTING;
    core.resetting++;
    const timeoutMs = o.validateTimeoutMs;
    bounded(core.clock, settle(() => o.factory.reset?.(entry.resource)), timeoutMs, () => new ValidationTimeoutError(`factory.reset did not settle within validateTimeoutMs=${timeoutMs} (pool "${o.name}")`)).then(
      () => {
        core.resetting--;
        if (entry.state !== EntryState.DESTROYED) core.handOut(entry, core.now());
        core.wakeClose();
        core.pump();
      },
      (error: unknown) => {
        core.resetting--;
        if (entry.state !== EntryState.DESTROYED) core.destroyEntry(entry, 'error', error);
        core.wakeClose();
        core.pump();
      },
    );
  }

  #failed(entry: PoolEntry<T>, error: unknown): void {
    this.#core.counters.validationFailures++;
    this.#core.signals.validationFailed(entry, error);
    this.#core.destroyEntry(entry, 'validation', error);
  }

  /** Runs factory.validate under validateTimeoutMs; calls `done` exactly once. */
  #validate(entry: PoolEntry<T>, done: (ok: boolean, error: unknown) => void): void {
    const o = this.#core.o;
    if (o.factory.validate === undefined) {
      done(true, undefined);
      return;
    }
    const controller = new AbortController();
    const work = settle(() => o.factory.validate?.(entry.resource, { signal: controller.signal }) ?? true);
    bounded(this.#core.clock, work, o.validateTimeoutMs, () => {
      const error = new ValidationTimeoutError(`factory.validate did not settle within validateTimeoutMs=${o.validateTimeoutMs} (pool "${o.name}")`);
      controller.abort(error);
      return error;
    }).then((ok) => { done(ok, ok ? undefined : new Error('factory.validate returned false')); }, (error: unknown) => { done(false, error); });
  }

  /** Disposes of a destroyed entry's resource, unless a live entry still holds the same one (then later). */
  retire(entry: PoolEntry<T>): void {
    const core = this.#core;
    const resource = entry.resource;
    for (const other of core.all) {
      if (other.resource === resource) {
        const waiting = this.#deferred.get(resource);
        if (waiting === undefined) this.#deferred.set(resource, [entry]);
        else waiting.push(entry);
        return;
      }
    }
    this.#dispose(entry);
    const waiting = this.#deferred.get(resource);
    if (waiting === undefined) return;
    this.#deferred.delete(resource);
    for (const earlier of waiting) this.#dispose(earlier);
  }

  /** Calls factory.destroy under destroyTimeoutMs; errors and timeouts are reported, never thrown. */
  #dispose(entry: PoolEntry<T>): void {
    const core = this.#core;
    const o = core.o;
    const work = bounded(core.clock, settle(() => o.factory.destroy(entry.resource)), o.destroyTimeoutMs, () => {
      this.destroyTimeouts++;
      return new DestroyTimeoutError(`factory.destroy did not settle within destroyTimeoutMs=${o.destroyTimeoutMs} (pool "${o.name}"); no longer waiting for it`);
    });
    const tracked: Promise<void> = work.then(
      () => undefined,
      (error: unknown) => {
        core.signals.destroyError(entry, error);
      },
    ).finally(() => {
      this.destroys.delete(tracked);
      core.wakeClose();
    });
    this.destroys.set(tracked, { resourceId: entry.id, startedAt: core.now() });
  }
}
