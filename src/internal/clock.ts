/** The package's one clock: monotonic time and timers, injectable for tests. */
import { performance } from 'node:perf_hooks';

/**
 * The only source of time and timers for the pool, the housekeeper and leak detection, so that every
 * timing rule can be tested with a fake clock instead of sleeping.
 */
export interface Clock {
  /** Monotonic milliseconds. Only differences are meaningful. */
  now(): number;
  /**
   * Schedules `fn` once after `ms`. `unref: true` lets the process exit while the timer is pending: used by
   * background work (housekeeping), never by work a caller is waiting on (an acquire deadline).
   */
  setTimeout(fn: () => void, ms: number, unref: boolean): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = object;

/** Converts a monotonic timestamp of {@link systemClock} into wall-clock epoch milliseconds. */
export function wallTime(clock: Clock, monotonicMs: number): number {
  return Date.now() - (clock.now() - monotonicMs);
}

const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** A timer for a delay longer than node's timers hold: re-armed in steps of at most 2^31-1 ms. */
class LongTimer {
  #timer: NodeJS.Timeout;

  constructor(fn: () => void, at: number, unref: boolean) {
    const step = (): void => {
      const left = at - performance.now();
      if (left <= 0) {
        fn();
        return;
      }
      this.#timer = setTimeout(step, Math.min(LONGEST_TIMER_MS, left));
      if (unref) this.#timer.unref();
    };
    this.#timer = setTimeout(step, LONGEST_TIMER_MS);
    if (unref) this.#timer.unref();
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

export const systemClock: Clock = Object.freeze({
  // The imported binding, not the global: node's global `performance` is a lazy accessor whose getter
  // runs on every read (about 500 instructions a request for the dispatcher's three readings).
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number, unref: boolean): TimerHandle {
    // Node fires a delay above 2^31-1 ms after 1 ms: such a delay is reached in steps instead.
    if (ms > LONGEST_TIMER_MS) return new LongTimer(fn, performance.now() + ms, unref);
    const timer = setTimeout(fn, ms);
    if (unref) timer.unref();
    return timer;
  },
  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof LongTimer) handle.clear();
    else clearTimeout(handle as NodeJS.Timeout);
  },
});
