/** One pooled resource and what the pool knows of it (state, times, current lease's forensics, guard). */
import type { AcquireSite } from '../leak/site.js';

/** Why a resource was destroyed; also the keys of `stats().destroyed`. */
export type DestroyReason = 'idle' | 'lifetime' | 'validation' | 'error' | 'leak' | 'revoked' | 'closed' | 'moved';

export const DESTROY_REASONS: readonly DestroyReason[] = ['idle', 'lifetime', 'validation', 'error', 'leak', 'revoked', 'closed', 'moved'];

// Plain numbers rather than strings: compared on every acquire and release.
export const EntryState = Object.freeze({ IDLE: 0, LEASED: 1, VALIDATING: 2, RESETTING: 3, DESTROYED: 4 });
export type EntryState = (typeof EntryState)[keyof typeof EntryState];

const STATE_NAMES = ['idle', 'leased', 'validating', 'resetting', 'destroyed'] as const;

/** An object whose `validUntil` (the pool's clock) bounds when a resource may still be lent: a budget permit. */
export interface LendGuard {
  readonly validUntil: number;
}

/** The guard of every resource whose factory registered none. */
export const NO_GUARD: LendGuard = Object.freeze({ validUntil: Infinity });

/** What a lease needs from the pool that lent it; implemented privately by the pool. */
export interface EntryOwner<T> {
  readonly name: string;
  now(): number;
  /** The pool's cheap hot-path timestamp (lags `now()` by at most one housekeeping period). */
  stamp(): number;
  /** Ends the current lease of `entry`: back to the pool, or destroyed when `destroy` is true. */
  settle(entry: PoolEntry<T>, destroy: boolean, cause: unknown): void;
}

/**
 * One resource and everything the pool knows about it (HikariCP's PoolEntry). It also carries the
 * current lease's forensics (when, where, label), so the pool can report on leases without keeping the
 * lease objects alive: a lease must stay collectable for drop detection to work.
 */
export class PoolEntry<T> {
  readonly id: number;
  readonly owner: EntryOwner<T>;
  readonly resource: T;
  readonly createdAt: number;
  /** When the maximum lifetime (minus this entry's jitter) runs out; Infinity without a lifetime. */
  readonly expiresAt: number;
  state: EntryState = EntryState.IDLE;
  /** Since when the resource has been idle (or when it was created). */
  idleSince: number;
  /** Last successful validation or keep-alive probe. */
  checkedAt: number;
  uses = 0;

  /** Id of the current (or last) lease; leases compare theirs to it to detect staleness. */
  leaseId = 0;
  acquiredAt = 0;
  site: AcquireSite | null = null;
  label: string | undefined = undefined;
  /**
   * Its index in the core's `fresh` (the current lease, held strongly until housekeeping hands it to the
   * FinalizationRegistry); kept from creation to destruction.
   */
  slot = -1;
  /** True while the current lease is registered for drop detection. */
  tracked = false;
  /** When a `leak` event was raised for the current lease (0: never). */
  leakReportedAt = 0;
  /** Set when the resource must not be lent again: destroyed as soon as its lease ends. */
  doomed: DestroyReason | null = null;
  doomedCause: unknown = undefined;
  /** Why it was destroyed, once it is. */
  endReason: DestroyReason | null = null;
  /** Set when the factory revoked it (CreateContext.revoke), possibly from under a lease. */
  revoked: { readonly reason: unknown } | null = null;
  /**
   * Registered by the factory (`CreateContext.guard`): once `guard.validUntil <= now` (the pool's clock)
   * the resource is revoked, never lent or handed over again. A null object by default.
   */
  guard: LendGuard = NO_GUARD;
  /** Out for a keep-alive probe: still counted as idle until the probe ends or the resource is destroyed. */
  probing = false;

  constructor(id: number, owner: EntryOwner<T>, resource: T, createdAt: number, expiresAt: number) {
    this.id = id;
    this.owner = owner;
    this.resource = resource;
    this.createdAt = createdAt;
    this.expiresAt = expiresAt;
    this.idleSince = createdAt;
    this.checkedAt = createdAt;
  }

  toString(): string {
    const now = this.owner.now();
    const parts = [STATE_NAMES[this.state], `age ${Math.round(now - this.createdAt)} ms`, `uses ${this.uses}`];
    if (this.state === EntryState.LEASED) {
      parts.push(`lease #${this.leaseId} held ${Math.round(now - this.acquiredAt)} ms`);
      if (this.site !== null) parts.push(`acquired at ${this.site.frame}`);
    } else if (this.state === EntryState.IDLE) {
      parts.push(`idle ${Math.round(now - this.idleSince)} ms`);
    }
    return `PoolEntry#${this.id}(pool "${this.owner.name}", ${parts.join(', ')})`;
  }
}
