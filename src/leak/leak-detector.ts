/** Which acquires capture their call site, and the FinalizationRegistry that sees dropped leases. */
import type { LeakDetectionMode } from '../pool/options.js';
import { captureSite, type AcquireSite } from './site.js';

/**
 * How long full capture stays on after a sign of trouble (a lease held too long, a lease dropped without
 * release, an acquire timeout, a waiter past half its deadline). During an incident every new lease then
 * carries its call site, so the next report names the culprit even if the first leaks were not sampled.
 */
export const LEAK_ESCALATION_MS = 300_000;

/**
 * Decides which acquires capture their call site, and watches lease objects for garbage collection.
 * One per pool; with `leakDetection: 'off'` the pool uses {@link NO_LEAK_DETECTION} instead, so the hot
 * path never branches on the mode.
 */
export interface LeakTracking {
  readonly enabled: boolean;
  /** The caller's site (frames above `callee` dropped), or null when detection is off. */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- frames above `callee` are dropped
  capture(callee: Function): AcquireSite | null;
  /**
   * How many acquires from now the next capture is due (1: the next one). The pool counts down itself,
   * so the acquires in between cost one decrement and no call.
   */
  nextCapture(now: number): number;
  escalate(now: number): void;
  escalated(now: number): boolean;
  /** Starts watching `lease`: `onDropped(token)` runs if it is collected before `untrack(token)`. */
  track(lease: object, token: object): void;
  untrack(token: object): void;
  dispose(): void;
}

export const NO_LEAK_DETECTION: LeakTracking = Object.freeze({
  enabled: false,
  capture: () => null,
  nextCapture: () => Infinity,
  escalate: () => undefined,
  escalated: () => false,
  track: () => undefined,
  untrack: () => undefined,
  dispose: () => undefined,
});

export class LeakDetector implements LeakTracking {
  readonly enabled = true;
  readonly #full: boolean;
  readonly #sampleRate: number;
  #escalatedUntil = -Infinity;
  #registry: FinalizationRegistry<object> | null;

  constructor(mode: Exclude<LeakDetectionMode, 'off'>, sampleRate: number, onDropped: (token: object) => void) {
    this.#full = mode === 'full';
    this.#sampleRate = sampleRate;
    this.#registry = new FinalizationRegistry(onDropped);
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- see LeakTracking
  capture(callee: Function): AcquireSite {
    return captureSite(callee);
  }

  nextCapture(now: number): number {
    return this.#full || now < this.#escalatedUntil ? 1 : this.#nextGap();
  }

  escalate(now: number): void {
    this.#escalatedUntil = now + LEAK_ESCALATION_MS;
  }

  escalated(now: number): boolean {
    return this.#full || now < this.#escalatedUntil;
  }

  track(lease: object, token: object): void {
    this.#registry?.register(lease, token, token);
  }

  untrack(token: object): void {
    this.#registry?.unregister(token);
  }

  dispose(): void {
    this.#registry = null;
  }

  // Geometric gaps rather than "every Nth": a fixed stride can alias with a workload that alternates
  // between code paths and never sample one of them.
  #nextGap(): number {
    const rate = this.#sampleRate;
    if (rate <= 0) return Infinity;
    if (rate >= 1) return 1;
    return Math.max(1, Math.ceil(Math.log(1 - Math.random()) / Math.log(1 - rate)));
  }
}
