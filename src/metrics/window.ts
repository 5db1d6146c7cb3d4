/**
 * Recent observations of one quantity (wait times of one pool), kept for a bounded time and count, to
 * answer "what were p50/p90/p99 over the last minute". Histograms answer that only to the resolution of
 * their buckets and only since the process started; a dashboard wants the recent, exact figure.
 */
export interface Percentiles {
  /** Observations inside the window. */
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export const NO_PERCENTILES: Percentiles = Object.freeze({ count: 0, p50: 0, p90: 0, p99: 0, max: 0 });

export class SlidingWindow {
  readonly #windowMs: number;
  readonly #capacity: number;
  // Two parallel ring buffers rather than an array of objects: one observation per acquire is hot.
  readonly #at: Float64Array;
  readonly #values: Float64Array;
  #start = 0;
  #size = 0;

  constructor(windowMs: number, capacity: number) {
    this.#windowMs = windowMs;
    this.#capacity = capacity;
    this.#at = new Float64Array(capacity);
    this.#values = new Float64Array(capacity);
  }

  /** Records `value` observed at monotonic time `at`; past the capacity, the oldest observation goes. */
  add(at: number, value: number): void {
    const index = (this.#start + this.#size) % this.#capacity;
    this.#at[index] = at;
    this.#values[index] = value;
    if (this.#size < this.#capacity) this.#size++;
    else this.#start = (this.#start + 1) % this.#capacity;
  }

  /** Nearest-rank percentiles of the observations made within the window ending at `now`. */
  percentiles(now: number): Percentiles {
    this.#expire(now);
    if (this.#size === 0) return NO_PERCENTILES;
    const sorted = new Float64Array(this.#size);
    for (let i = 0; i < this.#size; i++) sorted[i] = this.#values[(this.#start + i) % this.#capacity] ?? 0;
    sorted.sort();
    const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
    return { count: sorted.length, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: sorted[sorted.length - 1] ?? 0 };
  }

  #expire(now: number): void {
    const oldest = now - this.#windowMs;
    while (this.#size > 0 && (this.#at[this.#start] ?? 0) < oldest) {
      this.#start = (this.#start + 1) % this.#capacity;
      this.#size--;
    }
  }
}
