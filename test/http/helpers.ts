import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import { activeResources, grown } from '../support/handles.js';

export interface TestServer {
  readonly url: string;
  readonly port: number;
  /** Connections open at the server right now. */
  readonly open: number;
  /** Most connections open at once. */
  readonly peak: number;
  /** Connections accepted in total. */
  readonly accepted: number;
  /** Requests served. */
  readonly requests: number;
  resetPeak(): void;
  close(): Promise<void>;
}

/** A loopback HTTP server that counts its connections; `close()` destroys every socket it holds. */
export async function startServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, options: http.ServerOptions = {}): Promise<TestServer> {
  return listen(http.createServer({ keepAliveTimeout: 30_000, ...options }, handler), 'http:');
}

/** The self-signed test certificate (`test/fixtures/tls/`, for localhost and 127.0.0.1), read from the source tree. */
export function testCertificate(): { readonly cert: Buffer; readonly key: Buffer } {
  // Compiled to <dist>/test/http/; the fixtures stay in the source tree.
  const dir = new URL('../../../test/fixtures/tls/', import.meta.url);
  return { cert: readFileSync(new URL('cert.pem', dir)), key: readFileSync(new URL('key.pem', dir)) };
}

export interface TestHttpsServer extends TestServer {
  /** TLS handshakes completed (connections `accepted` minus those that failed the handshake). */
  readonly handshakes: number;
  /** The SNI server name of each completed handshake (`false` when the client sent none). */
  readonly servernames: readonly (string | false)[];
}

/** `startServer` over TLS with the test certificate: `https://127.0.0.1:<port>`. */
export async function startHttpsServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<TestHttpsServer> {
  const servernames: (string | false)[] = [];
  const server = https.createServer({ ...testCertificate(), keepAliveTimeout: 30_000 }, handler);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    servernames.push((socket as tls.TLSSocket & { servername: string | false }).servername);
  });
  // A client that rejects the certificate makes the server's handshake fail: expected in these tests.
  server.on('tlsClientError', () => undefined);
  // Connections are counted at the TCP level (listen), so those that fail the handshake count too.
  const base = await listen(server, 'https:');
  return Object.defineProperties(base, {
    handshakes: { get: () => servernames.length },
    servernames: { get: () => servernames },
  }) as TestHttpsServer;
}

/** Listens on loopback and counts what the tests assert on: connections (open, peak, accepted) and requests. */
async function listen(server: http.Server, protocol: string): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  let peak = 0;
  let accepted = 0;
  let requests = 0;
  server.on('connection', (socket: net.Socket) => {
    accepted++;
    sockets.add(socket);
    peak = Math.max(peak, sockets.size);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('request', () => { requests++; });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return Object.defineProperties({
    url: `${protocol}//127.0.0.1:${port}`,
    port,
    get open() { return sockets.size; },
    resetPeak: () => { peak = sockets.size; },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => { resolve(); });
    }),
  }, {
    peak: { get: () => peak },
    accepted: { get: () => accepted },
    requests: { get: () => requests },
  }) as TestServer;
}

/** Answers `body` (default 1 KiB of 'x'). */
export function ok(body = 'x'.repeat(1024)): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (_req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(body);
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 10 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

/**
 * Snapshot of active handles; `leftover()` waits a little for sockets to finish closing and returns the
 * handle types that grew (empty when nothing was left behind).
 */
export function handleSnapshot(): { leftover(): Promise<Record<string, number>> } {
  const before = activeResources();
  return {
    async leftover() {
      let diff: Record<string, number> = {};
      for (let i = 0; i < 50; i++) {
        diff = grown(before, activeResources());
        if (Object.keys(diff).length === 0) return diff;
        await sleep(10);
      }
      return diff;
    },
  };
}

/**
 * Samples `count()` repeatedly while `work` runs and returns the work's result and the highest sample.
 * Each sample waits for a full event-loop turn (setImmediate, then a timer): an interval whose callback
 * takes longer than its period would keep Node in the timers phase and starve all socket I/O.
 */
export async function peakDuring<R>(count: () => number, work: Promise<R>): Promise<{ result: R; peak: number }> {
  let peak = count();
  let running = true;
  const loop = (): void => {
    if (!running) return;
    peak = Math.max(peak, count());
    setImmediate(() => { if (running) setTimeout(loop, 2); });
  };
  loop();
  try {
    const result = await work;
    return { result, peak: Math.max(peak, count()) };
  } finally {
    running = false;
  }
}

/** GET through a node http.Agent, resolving with the body as text. */
export function agentGet(agent: http.Agent, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => { resolve(text); });
    }).on('error', reject);
  });
}
