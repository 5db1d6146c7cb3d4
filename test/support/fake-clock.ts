import type { Clock, TimerHandle } from '../../src/internal/clock.js';

interface FakeTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  readonly unref: boolean;
}

/** Lets every microtask and pending promise callback run, so the pool settles between steps. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A manual clock: time moves only when a test says so, and timers fire in order as it passes them, with
 * the pool given a chance to settle after each.
 */
export class FakeClock implements Clock {
  #now = 1_000_000;
  #seq = 0;
  readonly #timers = new Map<TimerHandle, FakeTimer>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number, unref: boolean): TimerHandle {
    const handle = {};
    this.#timers.set(handle, { at: this.#now + Math.max(0, ms), seq: ++this.#seq, fn, unref });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }

  /** Timers still pending (ref'd ones keep a real process alive). */
  get timers(): { total: number; ref: number } {
    let ref = 0;
    for (const t of this.#timers.values()) if (!t.unref) ref++;
    return { total: this.#timers.size, ref };
  }

  /** Moves time forward by `ms` without firing timers or yielding: a synchronous run that blocks the event loop. */
  block(ms: number): void {
    this.#now += ms;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flush();
    for (;;) {
      let next: [TimerHandle, FakeTimer] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].seq < next[1].seq))) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await flush();
    }
    this.#now = target;
    await flush();
  }
}
