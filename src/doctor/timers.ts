/**
 * Counts the process's live `Timeout` objects, unref'd ones included: `process.getActiveResourcesInfo()`
 * lists only ref'd timers, so 1,000 leaked unref'd intervals were invisible to the doctor. An async hook
 * sees every Timeout created and destroyed (cleared, or fired for the last time) while it is enabled. It
 * is enabled only while an in-process diagnosis runs (a hook with init and destroy slows every promise);
 * the timers that were already alive when it started are found once on the heap (the inspector's
 * queryObjects), so a leak that began before the first sample is counted too.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';

let hook: AsyncHook | null = null;
let users = 0;
const live = new Set<number>();
// Whether the timers alive before counting started are in the count (false without an inspector).
let seeded = false;

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
    // Enabled first, then the heap searched: a timer made in between is seen by one or both, never neither.
    hook.enable();
    const existing = existingTimers();
    seeded = existing !== null;
    if (existing !== null) for (const id of existing) live.add(id);
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
      seeded = false;
    }
  };
}

/** Timeouts alive now (unref'd included, those made before counting started too); null when not counting. */
export function liveTimers(): number | null {
  return hook === null ? null : live.size;
}

/** Whether {@link liveTimers} includes the timers made before counting started (it does unless the inspector is missing). */
export function timersSeeded(): boolean {
  return seeded;
}

interface InspectorSession {
  connect(): void;
  disconnect(): void;
  post(method: string, params: object, callback: (error: Error | null, result: Record<string, unknown>) => void): void;
}

// What runs on the heap's Timeout objects: the async id of each one not destroyed (cleared or fired for good).
const ASYNC_IDS = `function () {
  const ids = [];
  for (const timer of this) {
    if (timer._destroyed) continue;
    const key = Object.getOwnPropertySymbols(timer).find((s) => s.description === 'asyncId' || s.description === 'async_id_symbol');
    if (key !== undefined && typeof timer[key] === 'number') ids.push(timer[key]);
  }
  return ids;
}`;

/**
 * The async ids of the Timeouts alive now, found on the heap through the inspector (Runtime.queryObjects):
 * Node keeps its timer lists to itself, and an async hook only sees timers made after it is enabled. It
 * costs a full garbage collection, once per diagnosis. null when there is no inspector (a build without
 * it) or it does not answer synchronously.
 */
function existingTimers(): number[] | null {
  let session: InspectorSession;
  try {
    // Loaded here, not at import: only an in-process diagnosis needs it.
    const inspector = process.getBuiltinModule('node:inspector') as unknown as { Session: new () => InspectorSession };
    session = new inspector.Session();
    session.connect();
  } catch {
    return null;
  }
  const post = (method: string, params: object): Record<string, unknown> | null => {
    let out: Record<string, unknown> | null = null;
    // A session on this thread answers synchronously; an answer that comes later is ignored.
    session.post(method, params, (error, result) => { if (error === null) out = result; });
    return out;
  };
  const group = 'lifeguard-doctor-timers';
  try {
    const proto = post('Runtime.evaluate', {
      expression: '(() => { const probe = setTimeout(() => {}, 0); clearTimeout(probe); return Object.getPrototypeOf(probe); })()',
      objectGroup: group,
    });
    const protoId = (proto?.['result'] as { objectId?: string } | undefined)?.objectId;
    if (protoId === undefined) return null;
    const found = post('Runtime.queryObjects', { prototypeObjectId: protoId, objectGroup: group });
    const arrayId = (found?.['objects'] as { objectId?: string } | undefined)?.objectId;
    if (arrayId === undefined) return null;
    const ids = post('Runtime.callFunctionOn', { objectId: arrayId, functionDeclaration: ASYNC_IDS, returnByValue: true, objectGroup: group });
    const value = (ids?.['result'] as { value?: unknown } | undefined)?.value;
    return Array.isArray(value) ? value.filter((id): id is number => typeof id === 'number') : null;
  } finally {
    post('Runtime.releaseObjectGroup', { objectGroup: group });
    session.disconnect();
  }
}

/** The key of that count among a sample's handles. */
export const ALL_TIMERS = "Timeout (unref'd included)";
