/** Leak watch: registers leases for drop detection, reports leases held too long, reclaims, and follows up. */
import { wallTime } from '../internal/clock.js';
import type { PoolCore } from './core.js';
import type { LeakReport, LeaseInfo } from './events.js';
import { LEAK_CODES, leakMessage } from './messages.js';
import { EntryState, type PoolEntry } from './pool-entry.js';

interface DroppedToken<T> {
  readonly entry: PoolEntry<T>;
  readonly leaseId: number;
}

export class LeakWatch<T> {
  readonly #core: PoolCore<T>;

  constructor(core: PoolCore<T>) {
    this.#core = core;
  }

  /** The FinalizationRegistry's callback: a lease was garbage-collected while still out. */
  readonly onDropped = (token: object): void => {
    const { entry, leaseId } = token as DroppedToken<T>;
    if (entry.leaseId !== leaseId || entry.state !== EntryState.LEASED) return;
    const core = this.#core;
    entry.tracked = false;
    const now = core.now();
    core.counters.dropped++;
    this.#report('dropped', entry, now);
    // Someone may still hold the raw resource: it is destroyed, never lent again; its slot is freed.
    core.destroyEntry(entry, 'leak', undefined);
    core.pump();
  };

  /** Housekeeping: register young leases for drop detection, report those held too long, revoke the abandoned. */
  sweep(now: number): void {
    const core = this.#core;
    const o = core.o;
    // Oldest lease first, so reports read in the order the leaks happened.
    const leased = [...core.all].filter((e) => e.state === EntryState.LEASED).sort((a, b) => a.leaseId - b.leaseId);
    const unheard: Unheard[] = [];
    for (const entry of leased) {
      const lease = core.fresh[entry.slot];
      if (lease !== null && lease !== undefined) {
        core.leak.track(lease, { entry, leaseId: entry.leaseId } satisfies DroppedToken<T>);
        core.fresh[entry.slot] = null;
        entry.tracked = true;
      }
      const held = now - entry.acquiredAt;
      if (o.reclaimAfterMs > 0 && held >= o.reclaimAfterMs) {
        core.counters.revoked++;
        this.#report('reclaimed', entry, now, unheard);
        core.destroyEntry(entry, 'revoked', undefined);
      } else if (o.leakWarnAfterMs > 0 && held >= o.leakWarnAfterMs && entry.leakReportedAt === 0) {
        entry.leakReportedAt = now;
        this.#report('held', entry, now, unheard);
      }
    }
    this.#writeGrouped(unheard);
    // A waiter past half its deadline is pressure: capture every site until it passes.
    const head = core.queue.next();
    if (head !== undefined && now - head.waitingSince > head.timeoutMs / 2) core.escalate(now);
  }

  /** A lease reported as held too long came back: say so, with how long it was out. */
  returned(entry: PoolEntry<T>, now: number): void {
    const core = this.#core;
    const heldMs = now - entry.acquiredAt;
    core.signals.unleaked(entry, heldMs);
    if (core.signals.heard('unleaked') || core.signals.heard('leak')) return;
    // Its report went to stderr: so does the follow-up, or the report would read as a leak for good.
    const site = entry.site?.frame ?? null;
    const msg = `lease #${entry.leaseId} of pool "${core.o.name}" returned after ${Math.round(heldMs)} ms (reported held too long after ${Math.round(entry.leakReportedAt - entry.acquiredAt)} ms)${entry.label === undefined ? '' : ` (label "${entry.label}")`}, acquired at ${site ?? '(site not sampled)'}`;
    process.stderr.write(`${JSON.stringify({ level: 'info', code: 'LG_LEAK_RETURNED', msg, pool: core.o.name, leaseId: entry.leaseId, heldMs: Math.round(heldMs), label: entry.label, site })}\n`);
  }

  /** Reports nobody listened for, one line per kind and acquire site instead of one per lease. */
  #writeGrouped(unheard: readonly Unheard[]): void {
    const groups = new Map<string, Unheard[]>();
    for (const u of unheard) {
      const key = `${u.report.kind}\u0000${u.report.site ?? ''}`;
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [u]);
      else group.push(u);
    }
    const o = this.#core.o;
    for (const group of groups.values()) {
      const first = group[0] as Unheard;
      const r = first.report;
      if (group.length === 1) {
        writeLine(r, first.message);
        continue;
      }
      const held = group.map((u) => Math.round(u.report.heldMs));
      const what = r.kind === 'held' ? `held for ${Math.min(...held)}-${Math.max(...held)} ms (leakWarnAfterMs=${o.leakWarnAfterMs})` : `revoked after ${Math.min(...held)}-${Math.max(...held)} ms (reclaimAfterMs=${o.reclaimAfterMs}); their resources were destroyed`;
      const ids = group.map((u) => u.report.id);
      const msg = `${group.length} leases of pool "${r.pool}" ${what}, all acquired at ${r.site ?? '(site not sampled)'} (leases #${ids.join(', #')})`;
      process.stderr.write(`${JSON.stringify({ level: 'warn', code: LEAK_CODES[r.kind], msg, pool: r.pool, count: group.length, leaseIds: ids, heldMs: held, site: r.site, stack: r.stack })}\n`);
    }
  }

  #report(kind: LeakReport['kind'], entry: PoolEntry<T>, now: number, unheard?: Unheard[]): void {
    const core = this.#core;
    core.counters.leaks++;
    core.escalate(now);
    const info = core.leaseInfo(entry, now);
    const report: LeakReport = { kind, ...info };
    const message = leakMessage(kind, info, core.o.leakWarnAfterMs, core.o.reclaimAfterMs);
    if (!core.signals.leak(report, message)) {
      // A structured line when nobody listens, so a leak is never silent (grouped by site in a sweep).
      if (unheard === undefined) writeLine(report, message);
      else unheard.push({ report, message });
    }
  }
}

interface Unheard {
  readonly report: LeakReport;
  readonly message: string;
}

function writeLine(report: LeakReport, message: string): void {
  process.stderr.write(`${JSON.stringify({ level: 'warn', code: LEAK_CODES[report.kind], msg: message, pool: report.pool, leaseId: report.id, heldMs: Math.round(report.heldMs), label: report.label, site: report.site, stack: report.stack })}\n`);
}

/** The public record of an outstanding lease. */
export function leaseInfo<T>(core: PoolCore<T>, entry: PoolEntry<T>, now: number): LeaseInfo {
  return {
    pool: core.o.name,
    id: entry.leaseId,
    heldMs: now - entry.acquiredAt,
    acquiredAt: new Date(wallTime(core.clock, entry.acquiredAt)),
    label: entry.label,
    site: entry.site?.frame ?? null,
    stack: entry.site?.stack ?? null,
    resourceId: entry.id,
  };
}
