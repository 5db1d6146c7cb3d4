/**
 * Whether a count (active handles, threads) keeps growing. A creep is what incident 3 looked like: a
 * thread per client, never stopped. A burst is not a creep, so this compares floors, not peaks: the
 * lowest count over the most recent quarter of the window against the lowest over the earliest quarter.
 * A short spike raises neither floor; a steady climb of G over the window raises it by about 3G/4.
 */
export class GrowthTracker {
  readonly #windowMs: number;
  readonly #samples: { at: number; value: number }[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  add(at: number, value: number): void {
    this.#samples.push({ at, value });
    // Keep one sample older than the window: it proves the window is fully covered.
    while (this.#samples.length > 2 && (this.#samples[1]?.at ?? Infinity) <= at - this.#windowMs) this.#samples.shift();
  }

  /** The latest count, or null before the first sample. */
  get latest(): number | null {
    return this.#samples.at(-1)?.value ?? null;
  }

  /**
   * How much the floor rose over the window ending at `now`; null until samples span the whole window.
   */
  floorRise(now: number): number | null {
    const first = this.#samples[0];
    if (first === undefined || first.at > now - this.#windowMs) return null;
    const start = now - this.#windowMs;
    const quarter = this.#windowMs / 4;
    let early = Infinity;
    let late = Infinity;
    for (const { at, value } of this.#samples) {
      if (at <= start + quarter) early = Math.min(early, value);
      if (at >= now - quarter) late = Math.min(late, value);
    }
    return early === Infinity || late === Infinity ? null : late - early;
  }
}
