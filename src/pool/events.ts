/** The pool's typed events and the records they carry (leases, leak reports). */
import type { CloseReport } from './pool.js';
import type { Lease } from './lease.js';
import type { DestroyReason } from './pool-entry.js';

/** An outstanding lease, as reported by `pool.leases()`, leak events and `close()`. */
export interface LeaseInfo {
  readonly pool: string;
  readonly id: number;
  /** Milliseconds held so far. */
  readonly heldMs: number;
  /** Wall-clock time of the acquire. */
  readonly acquiredAt: Date;
  readonly label: string | undefined;
  /** First frame of the acquirer outside Lifeguard (`file:line:col`), or null when not captured. */
  readonly site: string | null;
  /** The acquirer's stack, or null when not captured. */
  readonly stack: string | null;
  /** Id of the pooled resource (stable for its lifetime). */
  readonly resourceId: number;
}

/**
 * `held`: out longer than `leakWarnAfterMs`. `dropped`: garbage-collected without release (its
 * resource was destroyed). `reclaimed`: revoked after `reclaimAfterMs` (its resource was destroyed).
 */
export interface LeakReport extends LeaseInfo {
  readonly kind: 'held' | 'dropped' | 'reclaimed';
}

/**
 * Payloads of the pool's events, by event name. Each event is also published on the `diagnostics_channel`
 * of the same name (src/pool/signals.ts builds both from one call; a type check there keeps the two
 * lists equal).
 */
export interface PoolEvents<T> {
  create: { readonly pool: string; readonly resource: T; readonly durationMs: number };
  createError: { readonly pool: string; readonly error: unknown; readonly consecutiveFailures: number; readonly retryInMs: number };
  destroy: { readonly pool: string; readonly resource: T; readonly reason: DestroyReason; readonly cause: unknown };
  /** The pool itself removed an idle resource (idle timeout, lifetime, failed validation or keep-alive, invalidation); follows its `destroy`. */
  evict: { readonly pool: string; readonly resource: T; readonly reason: DestroyReason };
  destroyError: { readonly pool: string; readonly resource: T; readonly error: unknown };
  /** Every acquire, the fast path included (`waitedMs` is 0 there). */
  acquire: { readonly pool: string; readonly lease: Lease<T>; readonly waitedMs: number };
  release: { readonly pool: string; readonly leaseId: number; readonly heldMs: number };
  queue: { readonly pool: string; readonly pending: number };
  timeout: { readonly pool: string; readonly waitedMs: number; readonly error: Error };
  validationFailed: { readonly pool: string; readonly resource: T; readonly error: unknown };
  leak: LeakReport & { readonly message: string };
  unleaked: { readonly pool: string; readonly leaseId: number; readonly heldMs: number; readonly label: string | undefined; readonly site: string | null };
  close: { readonly pool: string; readonly report: CloseReport };
}
