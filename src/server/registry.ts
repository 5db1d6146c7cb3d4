/** The live server guards of this process, for metrics, the dashboard and the doctor. */
import type { ServerGuard } from './guard.js';

// Weakly held, like the pools' registry: a guard its owner dropped must stay collectable.
const live = new Set<WeakRef<ServerGuard>>();
const refs = new WeakMap<ServerGuard, WeakRef<ServerGuard>>();

/** @internal Called by the guard's constructor. */
export function registerGuard(guard: ServerGuard): void {
  if (refs.has(guard)) return; // re-opened with its server
  const ref = new WeakRef(guard);
  refs.set(guard, ref);
  live.add(ref);
}

/** @internal Called when a guard closes. */
export function unregisterGuard(guard: ServerGuard): void {
  const ref = refs.get(guard);
  if (ref !== undefined) live.delete(ref);
  refs.delete(guard);
}

/**
 * The server guards of this process, oldest first: open ones, and those closed with their server (not
 * by `close()`), which open again if it listens again.
 */
export function servers(): ServerGuard[] {
  const out: ServerGuard[] = [];
  for (const ref of live) {
    const guard = ref.deref();
    if (guard === undefined) live.delete(ref);
    else out.push(guard);
  }
  return out;
}
