import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';

/** TCP states as the kernel numbers them in /proc/net/tcp (include/net/tcp_states.h). */
const STATES = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING'] as const;

export interface OwnSocket {
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
}

/** True when this machine exposes what {@link ownSockets} reads (Linux with procfs). */
export function canCountSockets(): boolean {
  try {
    readFileSync('/proc/net/tcp', 'utf8');
    readdirSync('/proc/self/fd');
    return true;
  } catch {
    return false;
  }
}

/**
 * The TCP sockets this process holds: the kernel's tables (/proc/net/tcp and tcp6) joined on inode with
 * this process's file descriptors (/proc/self/fd). What the kernel says, not what the code thinks it has.
 */
export function ownSockets(): OwnSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match?.[1] !== undefined) inodes.add(match[1]);
    } catch {
      // The fd closed while being listed (readdir's own fd, among others).
    }
  }
  // Keyed by inode: the kernel can list a socket twice when the table changes while it is read.
  const out = new Map<string, OwnSocket>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const inode = f[9];
      if (f.length < 10 || inode === undefined || !inodes.has(inode)) continue;
      const port = (address: string | undefined): number => parseInt(address?.split(':')[1] ?? '0', 16);
      out.set(inode, { localPort: port(f[1]), remotePort: port(f[2]), state: STATES[parseInt(f[3] ?? '0', 16)] ?? 'UNKNOWN' });
    }
  }
  return [...out.values()];
}

/** This process's client sockets to `remotePort`, optionally in one state only. */
export function socketsTo(remotePort: number, state?: string): OwnSocket[] {
  return ownSockets().filter((s) => s.remotePort === remotePort && (state === undefined || s.state === state));
}

/** Loopback listeners and connections for a test; `close()` destroys every socket and closes every listener. */
export interface LoopbackSockets {
  /** Every socket made: clients, and with `accept`, the accepted ones. */
  readonly sockets: net.Socket[];
  /** A listener on `host` (port 0); its port. */
  listen(host: string): Promise<number>;
  /** A connected client. */
  connect(host: string, port: number): Promise<net.Socket>;
  close(): Promise<void>;
}

/** `serverOptions` for each listener (`allowHalfOpen` keeps a peer's end in CLOSE_WAIT); `accept` keeps accepted sockets in `sockets`. */
export function loopbackSockets(serverOptions: net.ServerOpts = {}, accept = false): LoopbackSockets {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];
  return {
    sockets,
    async listen(host) {
      const server = net.createServer(serverOptions, (socket) => { if (accept) sockets.push(socket); });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      return (server.address() as net.AddressInfo).port;
    },
    async connect(host, port) {
      const socket = net.connect({ host, port });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      return socket;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}
