/**
 * The doctor's in-process inbound view: each server guarded by `lifeguard/server`, its sockets with the
 * route that owns them and their age, joined to the kernel's state of the same socket. What the kernel
 * alone cannot say: which handler holds the connection a client half-closed.
 */
import { servers } from '../server/registry.js';
import type { ServerGuard } from '../server/guard.js';
import type { ConnectionInfo, ServerGuardStats } from '../server/types.js';
import { seconds } from './join.js';
import { normalizeAddress, type TcpSocket, type TcpState } from './proc.js';

/** A guarded server's connection, with the kernel's state of its socket (null: not in the sample). */
export interface InboundSocket extends ConnectionInfo {
  readonly kernelState: TcpState | null;
  /** The kernel socket's inode, null when not in the sample: how findings name the server holding a socket. */
  readonly inode: number | null;
}

export interface InboundServer {
  readonly name: string;
  /** The TCP port it listens on, or null (a pipe, or not listening). */
  readonly port: number | null;
  /** Closed with its server (it comes back if the server listens again). */
  readonly closed: boolean;
  readonly stats: ServerGuardStats;
  /** Its connections, half-closed first, then oldest first. */
  readonly sockets: readonly InboundSocket[];
  /** The kernel's sockets of this process on the port, by state (listening socket excluded). */
  readonly kernel: Readonly<Partial<Record<TcpState, number>>>;
  /** Sockets on the port the guard does not track (accepted before it, or by another server on the port). */
  readonly untracked: number;
}

/** `address:port` as the guard writes it (`[v6]:port`) to the kernel's form (IPv4-mapped as IPv4). */
function remoteKey(remote: string): string | null {
  const colon = remote.lastIndexOf(':');
  if (colon < 0) return null;
  const address = remote.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return `${normalizeAddress(address)}|${remote.slice(colon + 1)}`;
}

/** Joins every guarded server's connections to the sample's sockets. */
export function collectInbound(sockets: readonly TcpSocket[], guards: readonly ServerGuard[] = servers()): InboundServer[] {
  return guards.map((guard) => {
    const address = guard.server.address();
    const port = address !== null && typeof address === 'object' ? address.port : null;
    const onPort = port === null ? [] : sockets.filter((s) => s.local.port === port && s.remote.port !== 0);
    const byRemote = new Map(onPort.map((s) => [`${normalizeAddress(s.remote.address)}|${String(s.remote.port)}`, s]));
    const kernel: Partial<Record<TcpState, number>> = {};
    for (const s of onPort) kernel[s.state] = (kernel[s.state] ?? 0) + 1;
    let matched = 0;
    const list = guard.connections().map((c) => {
      const key = remoteKey(c.remote);
      const socket = key === null ? undefined : byRemote.get(key);
      if (socket !== undefined) matched++;
      return { ...c, kernelState: socket?.state ?? null, inode: socket?.inode ?? null };
    });
    list.sort((a, b) => Number(b.halfClosedMs !== null) - Number(a.halfClosedMs !== null) || b.ageMs - a.ageMs);
    return { name: guard.name, port, closed: guard.closed, stats: guard.stats(), sockets: list, kernel, untracked: onPort.length - matched };
  });
}

/** The inbound view as text lines for the doctor's report (up to `perServer` sockets each). */
export function renderInbound(list: readonly InboundServer[], perServer = 10): string[] {
  if (list.length === 0) return [];
  const out = [`Inbound: ${String(list.length)} server${list.length === 1 ? '' : 's'} guarded by lifeguard/server:`];
  for (const server of list) {
    const { stats } = server;
    const c = stats.connections;
    const kernel = Object.entries(server.kernel).map(([state, n]) => `${state}=${String(n)}`).join(' ');
    out.push(`  ${server.name}${server.port === null ? '' : ` :${String(server.port)}`}${server.closed ? ' (closed)' : stats.shuttingDown ? ' (shutting down)' : ''}: `
      + `${String(stats.open)} open (active ${String(c.active)}, idle ${String(c.idle)}, raw ${String(c.open)}, upgraded ${String(c.upgraded)}, half-closed ${String(c['half-closed'])}, ending ${String(c.ending)}), `
      + `reaped: half-closed ${String(stats.reaped.halfClosed)}, idle ${String(stats.reaped.idle)}, destroyed ${String(stats.reaped.destroyed)}`
      + `; kernel: ${kernel === '' ? 'no socket' : kernel}${server.untracked > 0 ? `, ${String(server.untracked)} not tracked by the guard` : ''}`);
    for (const s of server.sockets.slice(0, perServer)) {
      out.push(`    ${s.remote}  ${s.owner ?? '(no request yet)'}  ${s.state}, open ${seconds(s.ageMs)}`
        + `${s.halfClosedMs === null ? '' : `, half-closed ${seconds(s.halfClosedMs)} ago`}, kernel ${s.kernelState ?? 'not seen'}`);
    }
    if (server.sockets.length > perServer) out.push(`    ... and ${String(server.sockets.length - perServer)} more`);
  }
  return out;
}

/** Who holds an inbound socket, for findings that list sockets: the guarded server and its connection. */
export interface InboundHolder {
  readonly server: string;
  readonly connection: InboundSocket;
}

/** The guarded servers' sockets by kernel inode. */
export function holdersByInode(list: readonly InboundServer[]): Map<number, InboundHolder> {
  const byInode = new Map<number, InboundHolder>();
  for (const server of list) {
    for (const connection of server.sockets) if (connection.inode !== null) byInode.set(connection.inode, { server: server.name, connection });
  }
  return byInode;
}

/** "accepted by server "api" (GET /export), half-closed 40 s ago, upgraded": the inbound twin of describeOwner. */
export function describeHolder(holder: InboundHolder): string {
  const c = holder.connection;
  return `accepted by server "${holder.server}" (${c.owner ?? 'no request yet'}), ${c.state}${c.halfClosedMs === null ? '' : `, half-closed ${seconds(c.halfClosedMs)} ago`}, open ${seconds(c.ageMs)}`;
}
