import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AcquireSite } from '../leak/site.js';
import { LEAK_ESCALATION_MS } from '../leak/leak-detector.js';
import type { LeakDetectionMode } from '../pool/options.js';

// The user's line is below undici's frames (undici.request, stream, fetch): those are noise in a report,
// like Lifeguard's own frames (which AcquireSite already drops).
const undiciRoot = path.dirname(fileURLToPath(import.meta.resolve('undici'))) + path.sep;

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

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- frames above `callee` are dropped
  capture(callee: Function, now: number): AcquireSite | null {
    if (this.#mode === 'off') return null;
    if (this.#mode === 'sampled' && now >= this.#escalatedUntil) {
      if (--this.#countdown > 0) return null;
      this.#countdown = this.#gap;
    }
    const raw: { stack?: string } = {};
    Error.captureStackTrace(raw, callee);
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
