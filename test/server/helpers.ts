/** Helpers of the server guard's tests: half-closing clients in batches, kernel CLOSE_WAIT counts, bounded waits. */
import http from 'node:http';
import net from 'node:net';
import { guardServer, type ServerGuard } from '../../src/server/index.js';
import { ownSockets } from '../support/sockets.js';

/** Sockets this process holds whose local port is `port` (the server side of its connections), by state. */
export function serverSideSockets(port: number, state?: string): number {
  return ownSockets().filter((s) => s.localPort === port && s.remotePort !== 0 && (state === undefined || s.state === state)).length;
}

/** Polls `condition` every `everyMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 20_000, everyMs = 25): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * Opens `count` loopback clients to `port`, `batch` at a time (connect, optionally a greeting and its
 * reply, then `end()`: a half-close). Resolves once every client has half-closed. The clients close on
 * their own when the server ends its side (allowHalfOpen is false on them).
 */
export async function halfClosingClients(port: number, count: number, options: { batch?: number; greeting?: string; expect?: string } = {}): Promise<HalfClosingClients> {
  const batch = options.batch ?? 250;
  const clients: net.Socket[] = [];
  const remotes = new Set<string>();
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      clients.push(socket);
      socket.on('error', reject);
      socket.once('connect', () => {
        remotes.add(`127.0.0.1:${String(socket.localPort)}`);
        if (options.greeting === undefined) {
          socket.end();
          resolve();
          return;
        }
        socket.write(options.greeting);
        let seen = '';
        const onData = (chunk: Buffer): void => {
          seen += chunk.toString('latin1');
          if (seen.includes(options.expect ?? '')) {
            socket.off('data', onData);
            socket.resume();
            socket.end();
            resolve();
          }
        };
        socket.on('data', onData);
      });
    })));
  }
  return { clients, remotes };
}

export interface HalfClosingClients {
  readonly clients: net.Socket[];
  /** `127.0.0.1:<local port>` of each client: what the server sees as its remote. */
  readonly remotes: ReadonlySet<string>;
}

/** The request of a WebSocket-style upgrade (no ws library: the handshake is all the guard sees). */
export const UPGRADE_REQUEST = 'GET /ws?token=secret HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
export const UPGRADE_RESPONSE = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';

export function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => { server.close(() => { resolve(); }); });
}

/**
 * Two guarded servers as the dashboard and the doctor see them: "api", an http server with a long-poll
 * route that never answers (one client waits on `GET /poll?token=secret`), and "couch", a raw net server
 * (allowHalfOpen) whose application never ends a socket (one client half-closes: CLOSE_WAIT).
 */
export interface InboundScene {
  readonly webGuard: ServerGuard;
  readonly rawGuard: ServerGuard;
  readonly webPort: number;
  readonly rawPort: number;
  /** Destroys both sides of every connection, closes both guards by hand and both servers. */
  close(): Promise<void>;
}

export async function inboundScene(): Promise<InboundScene> {
  const web = http.createServer((req) => { req.resume(); });
  const webGuard = guardServer(web, { name: 'api' });
  const webPort = await listen(web);
  const accepted: net.Socket[] = [];
  const raw = net.createServer({ allowHalfOpen: true }, (s) => { accepted.push(s); s.resume(); });
  const rawGuard = guardServer(raw, { name: 'couch', halfClosedTimeoutMs: 60_000 });
  const rawPort = await listen(raw);
  const poll = net.connect({ port: webPort, host: '127.0.0.1' });
  poll.write('GET /poll?token=secret HTTP/1.1\r\nHost: x\r\n\r\n');
  const half = net.connect({ port: rawPort, host: '127.0.0.1' });
  half.on('connect', () => { half.end(); });
  const clients = [poll, half];
  for (const c of clients) c.resume();
  return {
    webGuard, rawGuard, webPort, rawPort,
    async close() {
      for (const s of [...clients, ...accepted]) s.destroy();
      webGuard.close();
      rawGuard.close();
      web.closeAllConnections();
      await closeServer(web);
      await closeServer(raw);
    },
  };
}
