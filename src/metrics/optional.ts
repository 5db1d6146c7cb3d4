import { createRequire } from 'node:module';
import type { Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe } from '../pool/options.js';
import { MetricsCollector } from './collector.js';

const require = createRequire(import.meta.url);

/**
 * Loads an optional peer dependency (prom-client, @opentelemetry/api) only when the feature that needs
 * it is used, so that `lifeguard/metrics` imports cleanly without them.
 */
export function loadOptional(name: string, feature: string): unknown {
  try {
    return require(name);
  } catch (error) {
    throw new Error(`${feature} needs the optional peer dependency "${name}", which could not be loaded (${error instanceof Error ? error.message : String(error)}); install it with "npm install ${name}"`, { cause: error });
  }
}

/**
 * The collector an exporter reads: the caller's (shared, left open) or one of its own (closed with it).
 */
export function useCollector(given: unknown, clock?: Clock): { readonly collector: MetricsCollector; readonly owned: boolean } {
  if (given === undefined) return { collector: new MetricsCollector(clock === undefined ? {} : { clock }), owned: true };
  if (!(given instanceof MetricsCollector)) {
    throw new InvalidOptionError('collector', `invalid option "collector": expected a MetricsCollector, got ${describe(given)}`);
  }
  if (given.closed) throw new InvalidOptionError('collector', 'invalid option "collector": the MetricsCollector given is closed');
  if (clock !== undefined && clock !== given.clock) {
    throw new InvalidOptionError('clock', 'invalid option "clock": differs from the clock of the MetricsCollector given; give the clock to the collector only');
  }
  return { collector: given, owned: false };
}
