/** The live pools of the process, held weakly: what `pools()` lists for the doctor and the metrics. */
import type { Pool } from './pool.js';

// Weakly held: a pool that its owner forgot (never closed) must still be collectable, and the doctor
// must not be the reference that keeps it alive.
const live = new Set<WeakRef<Pool<unknown>>>();
const refs = new WeakMap<Pool<unknown>, WeakRef<Pool<unknown>>>();

/** @internal Called by the pool's constructor. */
export function registerPool(pool: Pool<unknown>): void {
  const ref = new WeakRef(pool);
  refs.set(pool, ref);
  live.add(ref);
}

/** @internal Called once a pool is closed or destroyed. */
export function unregisterPool(pool: Pool<unknown>): void {
  const ref = refs.get(pool);
  if (ref !== undefined) live.delete(ref);
  refs.delete(pool);
}

/** The open pools of this process, oldest first (for the doctor, the dashboard and metrics). */
export function pools(): Pool<unknown>[] {
  const out: Pool<unknown>[] = [];
  for (const ref of live) {
    const pool = ref.deref();
    if (pool === undefined) live.delete(ref);
    else out.push(pool);
  }
  return out;
}
