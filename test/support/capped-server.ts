/**
 * Incident 2's registry, in miniature: an HTTP server with a hard cap on concurrent connections. It
 * counts the TCP connections open to it, remembers the most it ever saw, and answers every request on a
 * connection opened past the cap with `401 Unauthorized` (what the registry did), so a client that
 * overshoots sees failures, and a test can assert the server's own counter never went past the cap.
 *
 * `GET /work?ms=N` answers `200 ok` after N ms (at most 1000). Loopback only.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface CappedServer {
  readonly port: number;
  readonly cap: number;
  /** Connections open now. */
  readonly current: number;
  /** Most connections ever open at once. */
  readonly maxSeen: number;
  /** Connections accepted in total. */
  readonly connections: number;
  /** Requests answered 200. */
  readonly served: number;
  /** Requests answered 401 because their connection was past the cap. */
  readonly rejected: number;
  /** Stops listening and closes every connection; resolves when the server is closed. */
  close(): Promise<void>;
}

export interface CappedServerHooks {
  /** Called as each connection is accepted, before any request on it. */
  readonly onConnection?: (socket: Socket) => void;
  /** Called as each request arrives, before it is answered. */
  readonly onRequest?: (socket: Socket, url: string) => void;
}

export async function startCappedServer(cap: number, hooks: CappedServerHooks = {}): Promise<CappedServer> {
  let current = 0;
  let maxSeen = 0;
  let connections = 0;
  let served = 0;
  let rejected = 0;
  const overCap = new WeakSet<Socket>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    hooks.onRequest?.(req.socket, req.url ?? '/');
    if (overCap.has(req.socket)) {
      rejected++;
      res.writeHead(401, { 'content-type': 'text/plain', 'content-length': '21' });
      res.end('too many connections\n');
      return;
    }
    const ms = Math.min(1000, Math.max(0, Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0) || 0));
    const timer = setTimeout(() => {
      timers.delete(timer);
      served++;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
      res.end('ok\n');
    }, ms);
    timers.add(timer);
  });
  // The cap is about connections: never close idle keep-alive connections from this side.
  server.keepAliveTimeout = 0;
  server.on('connection', (socket: Socket) => {
    connections++;
    current++;
    sockets.add(socket);
    if (current > maxSeen) maxSeen = current;
    if (current > cap) overCap.add(socket);
    hooks.onConnection?.(socket);
    let counted = true;
    // Counted down when the peer's FIN arrives ('end'), not later at 'close': a client that waits for
    // its socket's 'close' before giving its permit back has then certainly been counted out here.
    const gone = (): void => {
      if (!counted) return;
      counted = false;
      current--;
    };
    socket.once('end', gone);
    socket.once('close', () => {
      gone();
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    port,
    cap,
    get current() { return current; },
    get maxSeen() { return maxSeen; },
    get connections() { return connections; },
    get served() { return served; },
    get rejected() { return rejected; },
    close: () => new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.close(() => {
        resolve();
      });
      for (const socket of sockets) socket.destroy();
    }),
  };
}
