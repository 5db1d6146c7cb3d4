import { createRequire } from 'node:module';
import type { Clock } from '../internal/clock.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe } from '../pool/options.js';
import { MetricsCollector } from './collector.js';
import { DriverMissingError } from '../adapters/errors.js';

const require = createRequire(import.meta.url);

/**
 * Loads an optional peer dependency (prom-client, @opentelemetry/api) only when the feature that needs
 * it is used, so that `lifeguard/metrics` imports cleanly without them.
 */
export function loadOptional(name: string, feature: string): unknown {
  try {
    return require(name);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : '';
    // Only "the package itself is absent" becomes LG_DRIVER_MISSING (one line, naming the package; the
    // require stack stays in `cause`); a package that is installed but fails to load is reported as is.
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${name}'`)) throw new DriverMissingError(name, feature, { cause: error });
    throw error;
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
