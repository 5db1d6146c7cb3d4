import http from 'node:http';
import type net from 'node:net';
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
  const sockets = new Set<net.Socket>();
  let peak = 0;
  let accepted = 0;
  let requests = 0;
  const server = http.createServer({ keepAliveTimeout: 30_000, ...options }, (req, res) => {
    requests++;
    handler(req, res);
  });
  server.on('connection', (socket: net.Socket) => {
    accepted++;
    sockets.add(socket);
    peak = Math.max(peak, sockets.size);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get open() { return sockets.size; },
    get peak() { return peak; },
    get accepted() { return accepted; },
    get requests() { return requests; },
    resetPeak() { peak = sockets.size; },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => { resolve(); });
    }),
  };
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
