import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AcquireSite } from '../leak/site.js';
import { LEAK_ESCALATION_MS } from '../leak/leak-detector.js';
import type { LeakDetectionMode } from '../pool/options.js';

// The user's line is below undici's frames (undici.request, stream, fetch): those are noise in a report,
// like Lifeguard's own frames (which AcquireSite already drops).
const undiciRoot = path.dirname(fileURLToPath(import.meta.resolve('undici'))) + path.sep;

/** Frames captured for a request's site: undici's fetch path is 12 deep, and the caller's own callers help. */
const STACK_FRAMES = 30;

function userStack(stack: string | undefined): string {
  if (stack === undefined) return '';
  return stack.split('\n').filter((line) => !line.includes(undiciRoot) && !line.includes(`${path.sep}node_modules${path.sep}undici${path.sep}`) && !line.endsWith('(<anonymous>)')).join('\n');
}

/**
 * Decides which requests capture their call site: all (`full`), none (`off`), or a sample (`sampled`) that
 * becomes all for {@link LEAK_ESCALATION_MS} once a body leak was seen, so the next report names the line.
 */
export class SiteSampler {
  readonly #mode: LeakDetectionMode;
  readonly #gap: number;
  #countdown: number;
  #escalatedUntil = -Infinity;

  constructor(mode: LeakDetectionMode, rate: number) {
    this.#mode = mode;
    this.#gap = rate > 0 ? Math.max(1, Math.round(1 / rate)) : Infinity;
    this.#countdown = this.#gap;
  }

  /**
   * The call site of a request, or null when it is not sampled. `demand` is how many requests of its
   * origin pool are already running or waiting, of `max` connections: in `sampled` mode every request is
   * captured from the moment that reaches a thirty-second of the pool (at least one) until it reaches
   * the pool's size, because a pool filling up is what a leak looks like before any body is old enough
   * to report, and its holders must then be named (incident 4: 50 sockets leaked in one burst of a few
   * ms). An idle or lightly used pool pays nothing, and neither does a saturated one (every connection
   * busy and requests queueing: the steady state of a loaded service, where capturing every request
   * cost a third of the throughput); its holders were captured while it filled.
   */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- frames above `callee` are dropped
  capture(callee: Function, now: number, demand = 0, max = Infinity): AcquireSite | null {
    if (this.#mode === 'off') return null;
    if (this.#mode === 'sampled' && now >= this.#escalatedUntil && (demand * 32 < max || demand >= max)) {
      if (--this.#countdown > 0) return null;
      this.#countdown = this.#gap;
    }
    const raw: { stack?: string } = {};
    // fetch() reaches the dispatcher 12 frames below its caller (undici's fetch steps and a promise
    // executor); node's default limit of 10 cut the caller's frame off.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = STACK_FRAMES;
    Error.captureStackTrace(raw, callee);
    Error.stackTraceLimit = limit;
    return new AcquireSite({
      get stack() {
        return userStack(raw.stack);
      },
    });
  }

  escalate(now: number): void {
    this.#escalatedUntil = now + LEAK_ESCALATION_MS;
  }
}

/**
 * The pool lease label of a request whose site was captured (the site itself is the lease's acquire
 * site): with it, `diagnoseSelf()` and the doctor print the request and its line for its socket.
 */
export function leaseLabel(method: string, origin: string, path: string): string {
  return `${method} ${origin}${path}`;
}
