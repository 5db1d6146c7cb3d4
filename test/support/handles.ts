/** Counts the process's active resources by type (timers, sockets, ...), for no-handle-left-behind checks. */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Resource types whose count grew between two snapshots, with the growth. */
export function grown(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [type, n] of after) {
    const delta = n - (before.get(type) ?? 0);
    if (delta > 0) out[type] = delta;
  }
  return out;
}
