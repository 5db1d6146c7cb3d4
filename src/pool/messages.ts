/** The pool's texts: the acquire-timeout report, leak lines and lease descriptions, built from snapshots. */
import type { LeaseInfo, LeakReport } from './events.js';

/** Stable codes of the structured leak line written to stderr when nobody listens for `leak`. */
export const LEAK_CODES = { held: 'LG_LEAK_HELD', dropped: 'LG_LEAK_DROPPED', reclaimed: 'LG_LEAK_RECLAIMED' } as const;

export function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** `lease #3 held 95012 ms (label "job-7"), acquired at src/app.ts:42:18` */
export function describeLease(info: LeaseInfo): string {
  const label = info.label === undefined ? '' : ` (label "${info.label}")`;
  return `lease #${info.id} held ${Math.round(info.heldMs)} ms${label}, acquired at ${info.site ?? '(site not sampled)'}`;
}

/** `site x12, other site x3, (site not sampled) x2`: outstanding leases grouped by where they were acquired. */
export function leasesBySite(leases: readonly LeaseInfo[], top = 3): string {
  const bySite = new Map<string, number>();
  let unknown = 0;
  for (const info of leases) {
    if (info.site === null) unknown++;
    else bySite.set(info.site, (bySite.get(info.site) ?? 0) + 1);
  }
  const parts = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top).map(([site, n]) => `${site} x${n}`);
  if (bySite.size > top) parts.push(`${bySite.size - top} more sites`);
  if (unknown > 0) parts.push(`(site not sampled) x${unknown}`);
  return parts.join(', ');
}

/** What the acquire-timeout error says beyond its first line. */
export interface TimeoutFacts {
  readonly waitedMs: number;
  readonly state: string;
  /** Outstanding leases, oldest first. */
  readonly leases: readonly LeaseInfo[];
  readonly consecutiveCreateFailures: number;
  readonly lastCreateError: unknown;
  /** Lines about creations in flight (a hung factory) and the budget, when they matter. */
  readonly extra: readonly string[];
}

export function timeoutMessage(facts: TimeoutFacts): string {
  const lines = [`acquire timed out after ${Math.round(facts.waitedMs)} ms (${facts.state})`];
  const leases = facts.leases;
  if (leases.length > 0) {
    lines.push('  oldest leases:');
    const oldest = leases.slice(0, 3);
    for (const info of oldest) lines.push(`    ${describeLease(info)}`);
    // The oldest leases may not have captured their site; the oldest that did is the best lead.
    const oldestWithSite = oldest.some((l) => l.site !== null) ? undefined : leases.find((l) => l.site !== null);
    if (oldestWithSite !== undefined) lines.push(`    ... oldest with a captured site: ${describeLease(oldestWithSite)}`);
    lines.push(`  outstanding leases by acquire site: ${leasesBySite(leases)}`);
  }
  for (const line of facts.extra) lines.push(`  ${line}`);
  if (facts.consecutiveCreateFailures > 0) {
    lines.push(`  creation is failing (${facts.consecutiveCreateFailures} in a row), last error: ${errorText(facts.lastCreateError)}`);
  }
  return lines.join('\n');
}

/** The one line of a leak report. */
export function leakMessage(kind: LeakReport['kind'], info: LeaseInfo, leakWarnAfterMs: number, reclaimAfterMs: number): string {
  const what = kind === 'held' ? `held for ${Math.round(info.heldMs)} ms (leakWarnAfterMs=${leakWarnAfterMs})`
    : kind === 'dropped' ? `garbage-collected without release after ${Math.round(info.heldMs)} ms; its resource was destroyed`
      : `revoked after ${Math.round(info.heldMs)} ms (reclaimAfterMs=${reclaimAfterMs}); its resource was destroyed`;
  return `lease #${info.id} of pool "${info.pool}" ${what}${info.label === undefined ? '' : ` (label "${info.label}")`}, acquired at ${info.site ?? '(site not sampled)'}`;
}
