import type { Socket } from 'node:net';
import type { Pool } from '../pool/pool.js';
import { pools as openPools } from '../pool/registry.js';
import { normalizeAddress, type Endpoint, type TcpSocket } from './proc.js';

/** The lease that holds a pooled socket, as the doctor reports it. */
export interface OwnerLease {
  readonly id: number;
  /** Where `acquire()` was called (`file:line:col`), or null when leak detection did not capture it. */
  readonly site: string | null;
  readonly stack: string | null;
  readonly label: string | null;
  readonly heldMs: number;
  /** ISO time of the acquire. */
  readonly acquiredAt: string;
}

/** The pool resource a kernel socket belongs to (in-process diagnoses only). */
export interface SocketOwner {
  readonly pool: string;
  readonly resourceId: number;
  readonly resourceState: 'idle' | 'used' | 'validating' | 'resetting';
  readonly resourceAgeMs: number;
  /** How long the resource has sat idle in the pool; 0 unless idle. */
  readonly idleMs: number;
  /** Its lease, when lent. */
  readonly lease: OwnerLease | null;
  /** The pool's own leak threshold (`leakWarnAfterMs`), 0 when off. */
  readonly leakWarnAfterMs: number;
}

function key(local: Endpoint, remote: Endpoint): string {
  return `${normalizeAddress(local.address)}:${local.port}|${normalizeAddress(remote.address)}:${remote.port}`;
}

function socketKey(socket: Socket): string | null {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  // A destroyed socket no longer knows its addresses; nor does one still connecting.
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return null;
  return key({ address: localAddress, port: localPort }, { address: remoteAddress, port: remotePort });
}

/** The resources of a process's pools: all of them, and those owning a socket by its address four-tuple. */
export interface PoolResources {
  readonly all: readonly SocketOwner[];
  readonly bySocket: ReadonlyMap<string, SocketOwner>;
}

/**
 * Every resource of the given pools, and the sockets they own by address four-tuple. A `net.Socket`
 * does not expose its inode, but its local and remote address and port identify the same kernel
 * socket: no two TCP connections of a host share all four.
 */
export function collectOwners(pools: readonly Pool<unknown>[] = openPools()): PoolResources {
  const all: SocketOwner[] = [];
  const bySocket = new Map<string, SocketOwner>();
  for (const pool of pools) {
    const inspection = pool.inspect();
    const leakWarnAfterMs = pool.options.leakDetection === 'off' ? 0 : pool.options.leakWarnAfterMs;
    for (const resource of inspection.resources) {
      const lease = resource.lease;
      const owner: SocketOwner = {
        pool: inspection.name,
        resourceId: resource.id,
        resourceState: resource.state,
        resourceAgeMs: Math.round(resource.ageMs),
        idleMs: Math.round(resource.idleMs),
        lease: lease === null ? null : {
          id: lease.id,
          site: lease.site,
          stack: lease.stack,
          label: lease.label ?? null,
          heldMs: Math.round(lease.heldMs),
          acquiredAt: lease.acquiredAt.toISOString(),
        },
        leakWarnAfterMs,
      };
      all.push(owner);
      const k = resource.socket === null ? null : socketKey(resource.socket);
      if (k !== null) bySocket.set(k, owner);
    }
  }
  return { all, bySocket };
}

/** The owner of a kernel socket, if a pool's resource holds it. */
export function ownerOf(socket: TcpSocket, owners: PoolResources): SocketOwner | null {
  return owners.bySocket.get(key(socket.local, socket.remote)) ?? null;
}

/** "held by pool X, lease #3 acquired at src/file.ts:42:7, 95 s ago", or "idle in pool X for 12 s". */
export function describeOwner(owner: SocketOwner | null): string {
  if (owner === null) return 'not owned by any Lifeguard pool';
  const lease = owner.lease;
  if (lease === null) {
    const what = owner.resourceState === 'idle' ? `idle in pool "${owner.pool}" for ${seconds(owner.idleMs)}` : `${owner.resourceState} in pool "${owner.pool}"`;
    return `${what} (resource #${owner.resourceId}, created ${seconds(owner.resourceAgeMs)} ago)`;
  }
  const where = lease.site === null ? 'acquire site not captured (leakDetection)' : `acquired at ${lease.site}`;
  const label = lease.label === null ? '' : ` (label "${lease.label}")`;
  return `held by pool "${owner.pool}", lease #${lease.id}${label} ${where}, ${seconds(lease.heldMs)} ago`;
}

/** Milliseconds as a short human duration: `850 ms`, `95 s`, `12 min`, `3.5 h`. */
export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
