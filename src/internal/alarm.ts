/** One timer that fires at the earliest deadline it was asked for: the wait queue's deadlines, the housekeeper and the Redis budget use it. */
import type { Clock, TimerHandle } from './clock.js';
import { MAX_DURATION_MS } from './options.js';

/**
 * An earliest-deadline alarm. `at(deadline)` moves the timer only when the new deadline is earlier than
 * the armed one: an earlier timer is harmless (its owner finds nothing due and asks again), so a stream
 * of later deadlines costs one comparison each instead of a timer each. A deadline further away than a
 * timer can hold (2^31-1 ms) is reached in steps, never by a timer that fires after 1 ms.
 */
export class Alarm {
  readonly #clock: Clock;
  readonly #fire: () => void;
  readonly #unref: boolean;
  #timer: TimerHandle | null = null;
  #at = Infinity;
  /** The armed timer is one step towards a deadline further away than a timer can hold. */
  #step = false;

  /** `unref`: whether the armed timer lets the process exit (background work) or not (a caller waits). */
  constructor(clock: Clock, fire: () => void, unref: boolean) {
    this.#clock = clock;
    this.#fire = fire;
    this.#unref = unref;
  }

  /** The deadline the timer is armed for (Infinity when disarmed). */
  get armedAt(): number {
    return this.#at;
  }

  get armed(): boolean {
    return this.#timer !== null;
  }

  /** Makes sure the alarm fires no later than `deadline` (monotonic ms of the clock); Infinity or NaN (no deadline known) does nothing. */
  at(deadline: number, now?: number): void {
    if (!(deadline < Infinity) || (this.#timer !== null && this.#at <= deadline)) return;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#at = deadline;
    const wanted = Math.max(0, deadline - (now ?? this.#clock.now()));
    this.#step = wanted > MAX_DURATION_MS;
    const delay = this.#step ? MAX_DURATION_MS : wanted;
    this.#timer = this.#clock.setTimeout(this.#ring, delay, this.#unref);
  }

  clear(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#at = Infinity;
  }

  readonly #ring = (): void => {
    const at = this.#at;
    this.#timer = null;
    this.#at = Infinity;
    // A deadline beyond the longest timer: this was one step; take the next without bothering the owner.
    if (this.#step) {
      this.at(at);
      return;
    }
    this.#fire();
  };
}
