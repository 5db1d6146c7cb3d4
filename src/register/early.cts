/**
 * The hooks the attach needs from the process's first line: loaded synchronously by the CommonJS preload
 * (`node -r lifeguard/register`) and by the ESM attach, so that what an application does before the ESM
 * part has loaded is recorded and handed over, never missed.
 */

/** A stack captured now, formatted only if read (V8 formats `.stack` lazily). */
interface EarlyStack {
  stack?: string;
}

/** What the ioredis hook reports: a client that starts connecting, with the stack of the call. */
type IoredisSink = (client: object, stack: EarlyStack) => void;

interface IoredisHookState {
  sink: IoredisSink | null;
  /** Connects seen before a sink was set. */
  readonly early: { client: object; stack: EarlyStack }[];
}

const EARLY_LIMIT = 10_000;
const STATE = Symbol.for('lifeguard.register.ioredis');
const HOOKED = Symbol.for('lifeguard.register.ioredis.hooked');

function state(): IoredisHookState {
  const global = globalThis as unknown as Record<symbol, IoredisHookState | undefined>;
  // One state per process even if two copies of this file are loaded (dist and a packed install).
  global[STATE] ??= { sink: null, early: [] };
  return global[STATE];
}

/** Stacks taken at a connect reach past ioredis's own frames into the application's. */
function captureStack(): EarlyStack {
  const holder: EarlyStack = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder, captureStack);
  Error.stackTraceLimit = limit;
  return holder;
}

/**
 * Wraps `Redis.prototype.connect` (once per class): every client, whichever way it was imported or
 * destructured, goes through it when it starts connecting (from its constructor, or at its first command
 * with `lazyConnect`), so the stack then holds the application's line. ioredis's own reconnections call it
 * too; the sink ignores clients it already follows.
 */
function hookIoredis(Redis: unknown): boolean {
  const proto = (Redis as { prototype?: Record<string | symbol, unknown> } | null)?.prototype;
  const original = proto?.['connect'];
  if (proto === undefined || typeof original !== 'function') return false;
  if (proto[HOOKED] === true) return true;
  const hook = state();
  const connect = function (this: object, ...args: unknown[]): unknown {
    // Clients of Lifeguard's own pools are followed by their pool.
    if ((this as Record<symbol, unknown>)[Symbol.for('lifeguard.pooled')] !== true) {
      const stack = captureStack();
      if (hook.sink !== null) hook.sink(this, stack);
      // Bounded: should the ESM part never take them (it failed to load), this is all that is kept.
      else if (hook.early.length < EARLY_LIMIT) hook.early.push({ client: this, stack });
    }
    return Reflect.apply(original as (...a: unknown[]) => unknown, this, args);
  };
  Object.defineProperty(proto, 'connect', { value: connect, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(proto, HOOKED, { value: true, configurable: true, enumerable: false });
  Object.defineProperty(proto, Symbol.for('lifeguard.register.ioredis.original'), { value: original, configurable: true, enumerable: false });
  return true;
}

/** Restores `Redis.prototype.connect`. */
function unhookIoredis(Redis: unknown): void {
  const proto = (Redis as { prototype?: Record<string | symbol, unknown> } | null)?.prototype;
  if (proto?.[HOOKED] !== true) return;
  const original = proto[Symbol.for('lifeguard.register.ioredis.original')];
  Object.defineProperty(proto, 'connect', { value: original, writable: true, configurable: true, enumerable: false });
  Reflect.deleteProperty(proto, HOOKED);
  const hook = state();
  hook.sink = null;
  hook.early.length = 0;
}

/** Sets where connects go, first handing over those recorded before (null: record again). */
function setIoredisSink(sink: IoredisSink | null): void {
  const hook = state();
  hook.sink = sink;
  if (sink === null) return;
  for (const { client, stack } of hook.early.splice(0)) sink(client, stack);
}

const early = { hookIoredis, unhookIoredis, setIoredisSink };
export = early;
