/** Keeps the V8 map of process.nextTick's tick objects alive through idle periods (a measured slowdown otherwise). */
import { AsyncResource } from 'node:async_hooks';

/**
 * Keeps alive the hidden class (V8 map) of the objects `process.nextTick` queues, so that a process that
 * idles does not lose it and fall off a performance cliff for the rest of its life.
 *
 * Why: node builds each tick object with a literal `{ [async_id_symbol]: id, [trigger_async_id_symbol]:
 * id, callback, args }`. V8 remembers, in nextTick's feedback, the one map each of those computed-key
 * definitions saw, and holds the maps weakly. When a full garbage collection runs while no tick object is
 * alive (the memory reducer runs them in a process gone idle after a burst of work), the maps are
 * collected; the next nextTick builds new ones, the feedback sees a second map and turns megamorphic for
 * good, and from then on every nextTick defines its properties through V8's runtime. Measured on node
 * 20.20 in the HTTP benchmark's client processes, which idle between turns: nextTick goes from 1% to 10%
 * of a client's time and the process runs about 15% slower; in one run it struck 5 of 8 processes of
 * Lifeguard's agent and 2 of 8 of node's own http.Agent (whichever idled through a collection). An object
 * of the same shape, held here, keeps the maps (and the transitions nextTick follows) alive. It has to be
 * built before the first such collection: once the feedback is megamorphic, nothing brings it back.
 *
 * The object is built like node's, after the same empty literal map and with the same keys in the same
 * order, so it shares node's transitions instead of starting its own; the ids are fractional so that,
 * should it be the first to build them, the id fields hold doubles (as node's ids are) and node's own
 * objects never force a change of representation, which would replace the maps once more (integer ids
 * do exactly that). The two symbols are node's internal ones, read from an AsyncResource, which carries
 * the same two; a node that names them differently gets no holder and loses nothing.
 */
// undefined until the first call; null when this node has no such symbols. Read by keepTickObjectShape
// itself, so that no bundler can take the store for a dead one.
let holder: object | null | undefined;

/** Builds the holder once per process (per thread); later calls cost a branch. */
export function keepTickObjectShape(): void {
  if (holder !== undefined) return;
  holder = null;
  const resource = new AsyncResource('LIFEGUARD_TICK_SHAPE', { requireManualDestroy: true });
  // Its init reached any async_hooks listening; so does its end.
  resource.emitDestroy();
  const symbols = Object.getOwnPropertySymbols(resource);
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
  return holder ?? null;
}
