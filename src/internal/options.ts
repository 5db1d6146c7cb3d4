/** The option validators every part of the package shares: one way to read numbers, durations, clocks and keys. */
import type { Clock } from './clock.js';
import { InvalidOptionError } from './errors.js';

/**
 * The longest delay a timer can take: node (like browsers) stores it in a signed 32-bit integer and
 * fires a longer one after 1 ms. Every duration option is checked against it.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Describes a value for an error message: its type and, for primitives, the value itself. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value)}`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'undefined':
      return 'undefined';
    case 'function':
      return 'a function';
    default:
      return `an object`;
  }
}

/** Throws the package's one kind of option error: the option, what was expected, what was given. */
export function fail(option: string, expected: string, given: unknown): never {
  throw new InvalidOptionError(option, `invalid option "${option}": expected ${expected}, got ${describe(given)}`);
}

export interface NumberRule {
  readonly integer?: boolean;
  readonly min?: number;
  readonly allowInfinity?: boolean;
  /** A finite value must not exceed this (durations: {@link MAX_DURATION_MS}). */
  readonly max?: number;
}

/** Reads an optional numeric option: `undefined` gives the default; anything else must satisfy the rule. */
export function numberOption(source: Record<string, unknown>, key: string, fallback: number, rule: NumberRule = {}): number {
  const value = source[key];
  if (value === undefined) return fallback;
  const min = rule.min ?? 0;
  const kind = `${rule.integer === true ? 'an integer' : 'a number'} >= ${min}${rule.allowInfinity === true ? ' (or Infinity)' : ''}`;
  if (typeof value !== 'number' || Number.isNaN(value)) fail(key, kind, value);
  if (value === Infinity) {
    if (rule.allowInfinity === true) return value;
    fail(key, kind, value);
  }
  if (!Number.isFinite(value) || value < min || (rule.integer === true && !Number.isInteger(value))) fail(key, kind, value);
  if (rule.max !== undefined && value > rule.max) {
    throw new InvalidOptionError(key, `invalid option "${key}": expected at most ${rule.max}, got number ${value}: the longest timer node can keep is ${rule.max} ms (about 24.8 days); a longer one would fire after 1 ms`);
  }
  return value;
}

/**
 * Reads an optional duration in milliseconds: at most {@link MAX_DURATION_MS} (a longer timer would fire
 * after 1 ms), Infinity only where `allowInfinity` says "no deadline".
 */
export function durationOption(source: Record<string, unknown>, key: string, fallback: number, rule: Omit<NumberRule, 'max' | 'integer'> = {}): number {
  return numberOption(source, key, fallback, { ...rule, max: MAX_DURATION_MS });
}

/** A per-call deadline (`acquire({ timeoutMs })`): > 0, at most {@link MAX_DURATION_MS}, or Infinity. Returns the error message, or null when valid. */
export function timeoutProblem(what: string, given: unknown): string | null {
  if (typeof given !== 'number' || Number.isNaN(given) || given <= 0) return `invalid ${what} option "timeoutMs": expected a number > 0 (or Infinity), got ${describe(given)}`;
  if (given !== Infinity && given > MAX_DURATION_MS) return `invalid ${what} option "timeoutMs": expected at most ${MAX_DURATION_MS} (or Infinity), got number ${given}: the longest timer node can keep is ${MAX_DURATION_MS} ms (about 24.8 days); a longer one would fire after 1 ms`;
  return null;
}

/** Reads an optional string option that must be one of `values`. */
export function oneOf<V extends string>(source: Record<string, unknown>, key: string, values: readonly V[], fallback: V): V {
  const value = source[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    fail(key, `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`, value);
  }
  return value as V;
}

/** Rejects keys not in `known`, naming the first unknown one. */
export function rejectUnknownKeys(source: object, known: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(source)) {
    if (!known.has(key)) {
      throw new InvalidOptionError(key, `unknown option "${key}" for ${what}; known options: ${[...known].sort().join(', ')}`);
    }
  }
}

/** Reads an optional `clock` option (tests inject a fake one). */
export function clockOption(source: Record<string, unknown>): Clock | undefined {
  const clock = source['clock'] as Clock | undefined;
  if (clock !== undefined && (typeof clock !== 'object' || (clock as unknown) === null || typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function')) {
    fail('clock', 'an object with now(), setTimeout() and clearTimeout()', clock);
  }
  return clock;
}

/** The options argument itself: a plain object (or undefined, read as `{}`). */
export function objectOption(options: unknown, what: string): Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', `invalid ${what} options: expected an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}
