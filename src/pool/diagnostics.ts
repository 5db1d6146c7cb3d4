/** The pool's `diagnostics_channel` channels, their message types, and `inspect()`'s snapshot types. */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { Socket as NetSocket } from 'node:net';
import { wallTime } from '../internal/clock.js';
import type { PoolCore } from './core.js';
import { EntryState } from './pool-entry.js';
import type { CloseReport, Pool } from './pool.js';
import type { LeakReport, LeaseInfo } from './events.js';
import type { DestroyReason } from './pool-entry.js';
import type { PoolStats } from './stats.js';

/**
 * Names of the `node:diagnostics_channel` channels every pool publishes on. A subscriber costs the pool
 * one `hasSubscribers` check per event when nobody listens, so observability never has to be switched on
 * per pool: `lifeguard/metrics`, APMs and tests subscribe by name.
 */
export const CHANNELS = Object.freeze({
  open: 'lifeguard:pool:open',
  close: 'lifeguard:pool:close',
  create: 'lifeguard:pool:create',
  createError: 'lifeguard:pool:createError',
  destroy: 'lifeguard:pool:destroy',
  evict: 'lifeguard:pool:evict',
  destroyError: 'lifeguard:pool:destroyError',
  validationFailed: 'lifeguard:pool:validationFailed',
  acquire: 'lifeguard:pool:acquire',
  release: 'lifeguard:pool:release',
  queue: 'lifeguard:pool:queue',
  timeout: 'lifeguard:pool:timeout',
  leak: 'lifeguard:pool:leak',
  unleaked: 'lifeguard:pool:unleaked',
});

interface Base {
  /** The publishing pool. */
  readonly pool: Pool<unknown>;
  /** Its name (`pool.name`). */
  readonly name: string;
}

/** Payloads published on each channel, by key of {@link CHANNELS}. */
export interface ChannelMessages {
  open: Base;
  close: Base & { readonly report: CloseReport };
  create: Base & { readonly resourceId: number; readonly durationMs: number };
  createError: Base & { readonly error: unknown; readonly consecutiveFailures: number; readonly retryInMs: number };
  destroy: Base & { readonly resourceId: number; readonly reason: DestroyReason; readonly cause: unknown };
  /** The pool itself removed an idle resource (idle timeout, lifetime, failed validation or keep-alive, invalidation). */
  evict: Base & { readonly resourceId: number; readonly reason: DestroyReason };
  /** `factory.destroy` rejected or timed out. */
  destroyError: Base & { readonly resourceId: number; readonly error: unknown };
  /** A validation on borrow or a keep-alive probe failed (the resource is destroyed, reason `validation`). */
  validationFailed: Base & { readonly resourceId: number; readonly error: unknown };
  /** Every acquire, the fast path included (`waitedMs` is 0 there). */
  acquire: Base & { readonly leaseId: number; readonly resourceId: number; readonly waitedMs: number };
  release: Base & { readonly leaseId: number; readonly resourceId: number; readonly heldMs: number };
  queue: Base & { readonly pending: number };
  timeout: Base & { readonly waitedMs: number; readonly error: Error };
  leak: Base & { readonly report: LeakReport; readonly message: string };
  unleaked: Base & { readonly leaseId: number; readonly heldMs: number; readonly label: string | undefined; readonly site: string | null };
}

export type ChannelName = keyof typeof CHANNELS;

/** The channel objects, created once per process (diagnostics_channel keeps them by name). */
export const channels: { readonly [K in ChannelName]: diagnosticsChannel.Channel } = Object.freeze(
  Object.fromEntries(Object.entries(CHANNELS).map(([key, name]) => [key, diagnosticsChannel.channel(name)])) as Record<ChannelName, diagnosticsChannel.Channel>,
);

/** Subscribes to one channel with a typed handler; returns the unsubscribe function. */
export function subscribe<K extends ChannelName>(key: K, handler: (message: ChannelMessages[K]) => void): () => void {
  const fn = (message: unknown): void => {
    handler(message as ChannelMessages[K]);
  };
  diagnosticsChannel.subscribe(CHANNELS[key], fn);
  return () => {
    diagnosticsChannel.unsubscribe(CHANNELS[key], fn);
  };
}

/** One resource of a pool, as `pool.inspect()` sees it. */
export interface ResourceInfo {
  readonly id: number;
  readonly state: 'idle' | 'used' | 'validating' | 'resetting';
  readonly createdAt: Date;
  readonly ageMs: number;
  /** How long it has been idle; 0 unless idle. */
  readonly idleMs: number;
  /** Its current lease, when lent. */
  readonly lease: LeaseInfo | null;
  /** The TCP socket it owns, when known (`factory.socket`, or the resource itself is a socket). */
  readonly socket: Socket | null;
}

/** What `pool.inspect()` returns: enough to join a process's sockets to the pools and leases that own them. */
export interface PoolInspection {
  readonly name: string;
  readonly stats: PoolStats;
  readonly resources: readonly ResourceInfo[];
}

/** The outstanding leases, oldest first (what `pool.leases()` returns and the timeout message lists). */
export function leasesOf<T>(core: PoolCore<T>, now: number): LeaseInfo[] {
  const out: LeaseInfo[] = [];
  for (const entry of core.all) {
    if (entry.state === EntryState.LEASED) out.push(core.leaseInfo(entry, now));
  }
  return out.sort((a, b) => b.heldMs - a.heldMs || a.id - b.id);
}

/** Every live resource of a pool with its state, age, lease and socket (what `pool.inspect()` lists). */
export function inspectResources<T>(core: PoolCore<T>, now: number): ResourceInfo[] {
  const factory = core.o.factory;
  const resources: ResourceInfo[] = [];
  for (const entry of core.all) {
    const lent = entry.state === EntryState.LEASED;
    let socket: Socket | null = null;
    if (factory.socket !== undefined) {
      try {
        socket = factory.socket(entry.resource) ?? null;
      } catch {
        // A hook that throws must not break a diagnosis; the resource is reported without its socket.
        socket = null;
      }
    } else if (entry.resource instanceof NetSocket) socket = entry.resource;
    resources.push({
      id: entry.id,
      state: lent ? 'used' : entry.state === EntryState.IDLE ? 'idle' : entry.state === EntryState.VALIDATING ? 'validating' : 'resetting',
      createdAt: new Date(wallTime(core.clock, entry.createdAt)),
      ageMs: now - entry.createdAt,
      idleMs: entry.state === EntryState.IDLE ? now - entry.idleSince : 0,
      lease: lent ? core.leaseInfo(entry, now) : null,
      socket,
    });
  }
  return resources;
}
