/** Shutdown: close() waits for leases within its grace, destroy() fails everything; both bounded, both report. */
import type { TimerHandle } from '../internal/clock.js';
import type { PoolCore } from './core.js';
import type { Creation } from './creation.js';
import type { LeaseInfo } from './events.js';
import { PoolClosedError } from './errors.js';
import type { Maintenance } from './maintenance.js';
import { closeTimeout } from './options.js';
import { EntryState } from './pool-entry.js';

/** What `close()` and `destroy()` resolve with. */
export interface CloseReport {
  /** Leases still out when the pool gave up waiting; their resources were destroyed. */
  readonly outstanding: readonly LeaseInfo[];
  /** Resources whose `factory.destroy` did not settle within `destroyTimeoutMs`. */
  readonly destroyTimeouts: number;
  /** Creations still running when the pool stopped waiting for them (destroyed if they ever arrive). */
  readonly abandonedCreates: readonly { readonly runningMs: number }[];
  /** `factory.destroy` calls still running when the pool stopped waiting for them. */
  readonly abandonedDestroys: readonly { readonly resourceId: number; readonly runningMs: number }[];
}

/** What shutdown asks of the pool itself. */
export interface ShutdownHooks {
  /** Stop lending: the pool's state becomes closing. */
  closing(): void;
  /** Everything is released: unregister, dispose, emit `close`. */
  closed(report: CloseReport): void;
}

export class Shutdown<T> {
  readonly #core: PoolCore<T>;
  readonly #creation: Creation<T>;
  readonly #maintenance: Maintenance<T>;
  readonly #hooks: ShutdownHooks;
  #promise: Promise<CloseReport> | null = null;
  #done = false;
  #wake: (() => void) | null = null;
  /** The reason given to destroy(), once it was called. */
  cause: unknown = undefined;

  constructor(core: PoolCore<T>, hooks: ShutdownHooks) {
    this.#core = core;
    this.#creation = core.creation;
    this.#maintenance = core.maintenance;
    this.#hooks = hooks;
  }

  /** A state change: re-checks what a shutdown in progress is waiting for. */
  wake(): void {
    this.#wake?.();
  }

  /** `close(options)`: a bad argument is a rejection, never a synchronous throw. */
  close(options: unknown): Promise<CloseReport> {
    let timeoutMs: number;
    try {
      timeoutMs = closeTimeout(options);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.#promise !== null) return this.#promise;
    this.#hooks.closing();
    this.#promise = this.#run(timeoutMs, new PoolClosedError(`pool "${this.#core.o.name}" is closing`));
    return this.#promise;
  }

  destroy(error: unknown): Promise<CloseReport> {
    if (this.#done && this.#promise !== null) return this.#promise;
    this.cause = error ?? new Error('pool destroyed');
    if (this.#promise !== null) {
      // A graceful close may be waiting on leases: cut the wait short.
      this.wake();
      return this.#promise;
    }
    this.#hooks.closing();
    this.#promise = this.#run(0, new PoolClosedError(`pool "${this.#core.o.name}" was destroyed`, { cause: this.cause }));
    return this.#promise;
  }

  /** What an operation on a closed pool fails with: `cannot ${action} pool "db": it was closed`. */
  closedError(action: string): PoolClosedError {
    const cause = this.cause;
    return new PoolClosedError(`cannot ${action} pool "${this.#core.o.name}": it was ${cause === undefined ? 'closed' : 'destroyed'}`, cause === undefined ? undefined : { cause });
  }

  async #run(graceMs: number, waiterError: PoolClosedError): Promise<CloseReport> {
    const core = this.#core;
    const o = core.o;
    // 1. No more waiting: every waiter is rejected at once; no more retries; creations told to stop.
    this.#core.waiting.refuseAll(() => waiterError);
    this.#creation.stop(waiterError);
    // 2. Idle resources go now.
    for (const entry of core.idle.toArray()) core.destroyEntry(entry, 'closed', undefined);

    // 3. Wait for lent resources to come back (graceful close only), then take back the rest.
    if (graceMs > 0) await this.#waitUntil(() => core.all.size === core.idle.length || this.cause !== undefined, graceMs);
    const now = core.now();
    const outstanding: LeaseInfo[] = [];
    for (const entry of [...core.all]) {
      if (entry.state === EntryState.LEASED) outstanding.push(core.leaseInfo(entry, now));
      core.destroyEntry(entry, 'closed', undefined);
    }
    outstanding.sort((a, b) => b.heldMs - a.heldMs || a.id - b.id);
    // 4. Creations still in flight get at most destroyTimeoutMs to notice the abort; stragglers that
    //    arrive later are destroyed on arrival.
    await this.#waitUntil(() => this.#creation.size === 0, o.destroyTimeoutMs);
    const abandonedCreates = this.#creation.abandonAll(waiterError);
    // Each destroy is bounded by its own (unref'd) timer; this ref'd wait keeps the process alive until
    // they settle or time out, so the caller of close() always gets its report.
    await this.#waitUntil(() => this.#maintenance.destroys.size === 0, o.destroyTimeoutMs);

    this.#done = true;
    const end = core.now();
    const abandonedDestroys = [...this.#maintenance.destroys.values()].map((d) => ({ resourceId: d.resourceId, runningMs: end - d.startedAt }));
    if (abandonedCreates.length > 0 || abandonedDestroys.length > 0) {
      // Never a silent wait: say what was given up on, and for how long it had run.
      process.emitWarning(`pool "${o.name}" closed without waiting further for ${abandonedCreates.length} factory.create and ${abandonedDestroys.length} factory.destroy call(s) still running (longest ${Math.round(Math.max(0, ...abandonedCreates.map((c) => c.runningMs), ...abandonedDestroys.map((d) => d.runningMs)))} ms)`, { code: 'LIFEGUARD_ABANDONED' });
    }
    const report: CloseReport = { outstanding, destroyTimeouts: this.#maintenance.destroyTimeouts, abandonedCreates, abandonedDestroys };
    this.#hooks.closed(report);
    return report;
  }

  /** Waits until `done()` holds (re-checked on every state change) or `timeoutMs` passes. */
  #waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    const clock = this.#core.clock;
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | null = null;
      const finish = (): void => {
        this.#wake = null;
        if (timer !== null) clock.clearTimeout(timer);
        resolve();
      };
      this.#wake = () => {
        if (done()) finish();
      };
      // Ref'd: the caller awaits close(), so the process must not exit before it settles.
      if (timeoutMs !== Infinity) timer = clock.setTimeout(finish, timeoutMs, false);
    });
  }
}
