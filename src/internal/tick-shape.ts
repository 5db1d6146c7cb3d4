import { AsyncResource } from 'node:async_hooks';

/**
 * Keeps alive the hidden class (V8 map) of the objects `process.nextTick` queues, so that a process that
 * idles does not lose it and fall off a performance cliff for the rest of its life.
 *
 * Why: node builds each tick object with a literal `{ [async_id_symbol]: id, [trigger_async_id_symbol]:
 * id, callback, args }`. V8 remembers, in nextTick's feedback, the one map each of those computed-key
 * definitions saw, and holds the maps weakly. When a process idles with no tick object alive and a few
 * full garbage collections run (the memory reducer does exactly that after a burst of work), the maps are
 * collected; the next nextTick builds new ones, the feedback sees a second map and turns megamorphic for
 * good, and from then on every nextTick defines its properties through V8's runtime. Measured on node
 * 20.20 in the HTTP benchmark: nextTick goes from 1% to 10% of the client's time and the process runs
 * about 15% slower, in half of the client processes of node's own http.Agent and Lifeguard's agent alike
 * (whichever happened to idle through the collections). An object of the same shape, held here, keeps
 * the maps (and the transitions nextTick follows) alive.
 *
 * The object is built like node's, after the same empty literal map and with the same keys in the same
 * order, so it shares node's transitions instead of starting its own; the ids are fractional so that,
 * should it be the first to build them, the id fields hold doubles (as node's ids are) and node's own
 * objects never force a change of representation, which would replace the maps once more. The two
 * symbols are node's internal ones, read from an AsyncResource, which carries the same two; a node that
 * names them differently gets no holder and loses nothing.
 */
let holder: object | null = null;
let tried = false;

/** Builds the holder once per process (per thread); later calls cost a branch. */
export function keepTickObjectShape(): void {
  if (tried) return;
  tried = true;
  const symbols = Object.getOwnPropertySymbols(new AsyncResource('LIFEGUARD_TICK_SHAPE', { requireManualDestroy: true }));
  const asyncId = symbols.find((s) => s.description === 'async_id_symbol');
  const triggerAsyncId = symbols.find((s) => s.description === 'trigger_async_id_symbol');
  if (asyncId === undefined || triggerAsyncId === undefined) return;
  // Key order, key kinds and property count as in node's lib/internal/process/task_queues.js.
  holder = {
    [asyncId]: -0.5,
    [triggerAsyncId]: -0.5,
    callback: keepTickObjectShape,
    args: undefined,
  };
}

/** The object that holds the shape (null before the first call, or on a node without those symbols): for tests. */
export function tickShapeHolder(): object | null {
  return holder;
}
