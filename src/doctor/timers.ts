/**
 * Counts the process's live `Timeout` objects, unref'd ones included: `process.getActiveResourcesInfo()`
 * lists only ref'd timers, so 1,000 leaked unref'd intervals were invisible to the doctor. An async hook
 * sees every Timeout created and destroyed (cleared, or fired for the last time) while it is enabled. It
 * is enabled only while an in-process diagnosis runs (a hook with init and destroy slows every promise),
 * so the count starts at 0 and its growth across samples is what it tells.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';

let hook: AsyncHook | null = null;
let users = 0;
const live = new Set<number>();

/** Starts counting (shared by every caller); the returned function stops this caller's use. */
export function countTimers(): () => void {
  if (hook === null) {
    hook = createHook({
      init(asyncId, type) {
        if (type === 'Timeout') live.add(asyncId);
      },
      destroy(asyncId) {
        live.delete(asyncId);
      },
    });
    hook.enable();
  }
  users++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--users === 0 && hook !== null) {
      hook.disable();
      hook = null;
      live.clear();
    }
  };
}

/** Timeouts created since counting started and not destroyed yet, unref'd included; null when not counting. */
export function liveTimers(): number | null {
  return hook === null ? null : live.size;
}

/** The key of that count among a sample's handles. */
export const ALL_TIMERS = "Timeout (unref'd included)";
