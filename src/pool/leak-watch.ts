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
    for (const entry of leased) {
      if (entry.lease !== null) {
        core.leak.track(entry.lease, { entry, leaseId: entry.leaseId } satisfies DroppedToken<T>);
        entry.lease = null;
        entry.tracked = true;
      }
      const held = now - entry.acquiredAt;
      if (o.reclaimAfterMs > 0 && held >= o.reclaimAfterMs) {
        core.counters.revoked++;
        this.#report('reclaimed', entry, now);
        core.destroyEntry(entry, 'revoked', undefined);
      } else if (o.leakWarnAfterMs > 0 && held >= o.leakWarnAfterMs && entry.leakReportedAt === 0) {
        entry.leakReportedAt = now;
        this.#report('held', entry, now);
      }
    }
    // A waiter past half its deadline is pressure: capture every site until it passes.
    const head = core.queue.next();
    if (head !== undefined && now - head.enqueuedAt > head.timeoutMs / 2) core.escalate(now);
  }

  /** A lease reported as held too long came back: say so, with how long it was out. */
  returned(entry: PoolEntry<T>, now: number): void {
    this.#core.signals.unleaked(entry, now - entry.acquiredAt);
  }

  #report(kind: LeakReport['kind'], entry: PoolEntry<T>, now: number): void {
    const core = this.#core;
    core.counters.leaks++;
    core.escalate(now);
    const info = core.leaseInfo(entry, now);
    const report: LeakReport = { kind, ...info };
    const message = leakMessage(kind, info, core.o.leakWarnAfterMs, core.o.reclaimAfterMs);
    if (!core.signals.leak(report, message)) {
      // One structured line when nobody listens, so a leak is never silent.
      process.stderr.write(`${JSON.stringify({ level: 'warn', code: LEAK_CODES[kind], msg: message, pool: info.pool, leaseId: info.id, heldMs: Math.round(info.heldMs), label: info.label, site: info.site, stack: info.stack })}\n`);
    }
  }
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
