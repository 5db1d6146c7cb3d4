/** Every pool event, emitted as a typed event and published on its diagnostics_channel from one call. */
import { TypedEmitter } from '../internal/emitter.js';
import { channels, type ChannelMessages } from './diagnostics.js';
import type { LeakReport, PoolEvents } from './events.js';
import type { Lease } from './lease.js';
import type { DestroyReason, PoolEntry } from './pool-entry.js';
import type { CloseReport, Pool } from './pool.js';

// The two lists cannot drift: an event without a channel, or a channel without an event (other than
// `open`, published before anyone can listen), fails the type check.
type EventOnly = Exclude<keyof PoolEvents<unknown>, keyof ChannelMessages>;
type ChannelOnly = Exclude<keyof ChannelMessages, keyof PoolEvents<unknown> | 'open'>;
export type SameLists = [EventOnly, ChannelOnly] extends [never, never] ? true : never;
/** Compile-time only: `true` is not assignable to `never` when the lists drift. */
export const SAME_LISTS: SameLists = true;

/**
 * A method per event, each building the event's payload and the channel's message from the same
 * arguments. Callers on the hot path check `pool listening || channel.hasSubscribers` first, so an
 * unobserved pool pays no call.
 */
export class Signals<T> {
  readonly events: TypedEmitter<PoolEvents<T>>;
  /** False until the first listener is added: the hot path then skips event checks with one boolean read. */
  listening = false;
  readonly #pool: Pool<unknown>;
  readonly #name: string;

  constructor(pool: Pool<T>, name: string) {
    this.#pool = pool as Pool<unknown>;
    this.#name = name;
    this.events = new TypedEmitter<PoolEvents<T>>((error, event) => {
      process.emitWarning(`a listener for pool "${name}" event "${event}" threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { code: 'LIFEGUARD_LISTENER' });
    });
  }

  /** Whether someone listens for `event` (leak reports fall back to stderr otherwise). */
  heard(event: keyof PoolEvents<T>): boolean {
    return this.#wants(event);
  }

  #wants(event: keyof PoolEvents<T>): boolean {
    return this.listening && this.events.hasListeners(event);
  }

  open(): void {
    if (channels.open.hasSubscribers) channels.open.publish({ pool: this.#pool, name: this.#name });
  }

  create(entry: PoolEntry<T>, durationMs: number): void {
    if (this.#wants('create')) this.events.emit('create', { pool: this.#name, resource: entry.resource, durationMs });
    if (channels.create.hasSubscribers) channels.create.publish({ pool: this.#pool, name: this.#name, resourceId: entry.id, durationMs });
  }

  createError(error: unknown, consecutiveFailures: number, retryInMs: number): void {
    if (this.#wants('createError')) this.events.emit('createError', { pool: this.#name, error, consecutiveFailures, retryInMs });
    if (channels.createError.hasSubscribers) channels.createError.publish({ pool: this.#pool, name: this.#name, error, consecutiveFailures, retryInMs });
  }

  /** A destroy, followed by an eviction when the pool itself removed an idle resource. */
  destroy(entry: PoolEntry<T>, reason: DestroyReason, cause: unknown, evicted: boolean): void {
    if (this.#wants('destroy')) this.events.emit('destroy', { pool: this.#name, resource: entry.resource, reason, cause });
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ pool: this.#pool, name: this.#name, resourceId: entry.id, reason, cause });
    if (!evicted) return;
    if (this.#wants('evict')) this.events.emit('evict', { pool: this.#name, resource: entry.resource, reason });
    if (channels.evict.hasSubscribers) channels.evict.publish({ pool: this.#pool, name: this.#name, resourceId: entry.id, reason });
  }

  destroyError(entry: PoolEntry<T>, error: unknown): void {
    if (this.#wants('destroyError')) this.events.emit('destroyError', { pool: this.#name, resource: entry.resource, error });
    if (channels.destroyError.hasSubscribers) channels.destroyError.publish({ pool: this.#pool, name: this.#name, resourceId: entry.id, error });
  }

  acquire(lease: Lease<T>, entry: PoolEntry<T>, waitedMs: number): void {
    if (this.#wants('acquire')) this.events.emit('acquire', { pool: this.#name, lease, waitedMs });
    if (channels.acquire.hasSubscribers) channels.acquire.publish({ pool: this.#pool, name: this.#name, leaseId: lease.id, resourceId: entry.id, waitedMs });
  }

  release(entry: PoolEntry<T>, heldMs: number): void {
    if (this.#wants('release')) this.events.emit('release', { pool: this.#name, leaseId: entry.leaseId, heldMs });
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this.#pool, name: this.#name, leaseId: entry.leaseId, resourceId: entry.id, heldMs });
  }

  queue(pending: number): void {
    if (this.#wants('queue')) this.events.emit('queue', { pool: this.#name, pending });
    if (channels.queue.hasSubscribers) channels.queue.publish({ pool: this.#pool, name: this.#name, pending });
  }

  timeout(waitedMs: number, error: Error): void {
    if (this.#wants('timeout')) this.events.emit('timeout', { pool: this.#name, waitedMs, error });
    if (channels.timeout.hasSubscribers) channels.timeout.publish({ pool: this.#pool, name: this.#name, waitedMs, error });
  }

  validationFailed(entry: PoolEntry<T>, error: unknown): void {
    if (this.#wants('validationFailed')) this.events.emit('validationFailed', { pool: this.#name, resource: entry.resource, error });
    if (channels.validationFailed.hasSubscribers) channels.validationFailed.publish({ pool: this.#pool, name: this.#name, resourceId: entry.id, error });
  }

  /** A leak report; false when nobody listened for the event (the caller then writes it to stderr). */
  leak(report: LeakReport, message: string): boolean {
    if (channels.leak.hasSubscribers) channels.leak.publish({ pool: this.#pool, name: this.#name, report, message });
    if (!this.#wants('leak')) return false;
    this.events.emit('leak', { ...report, message });
    return true;
  }

  unleaked(entry: PoolEntry<T>, heldMs: number): void {
    const label = entry.label;
    const site = entry.site?.frame ?? null;
    if (this.events.hasListeners('unleaked')) this.events.emit('unleaked', { pool: this.#name, leaseId: entry.leaseId, heldMs, label, site });
    if (channels.unleaked.hasSubscribers) channels.unleaked.publish({ pool: this.#pool, name: this.#name, leaseId: entry.leaseId, heldMs, label, site });
  }

  close(report: CloseReport): void {
    this.events.emit('close', { pool: this.#name, report });
    if (channels.close.hasSubscribers) channels.close.publish({ pool: this.#pool, name: this.#name, report });
  }
}
