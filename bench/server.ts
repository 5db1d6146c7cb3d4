/**
 * The server side's benchmarks: graceful shutdown under load, side by side with http-terminator and
 * stoppable (time to close, requests dropped); and the guard's per-request overhead (throughput of one
 * http server with and without guardServer, as a ratio).
 */
import http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createHttpTerminator } from 'http-terminator';
import stoppable from 'stoppable';
import { guardServer } from '../src/server/index.js';
import { median } from './harness.js';

export const SERVER_LIBRARIES = ['lifeguard', 'lifeguard idleGraceMs=250', 'http-terminator', 'stoppable'] as const;
export type ServerLibrary = (typeof SERVER_LIBRARIES)[number];

export interface ServerRound {
  readonly library: ServerLibrary;
  /** From the shutdown call to the server's 'close' event. */
  readonly closeMs: number;
  /** Requests the server read whose response never reached the client in full. */
  readonly dropped: number;
  /** Requests reset before the server read them (sent onto a keep-alive socket as it closed). */
  readonly unread: number;
  /** Requests refused: a client whose idle socket was closed tried a new connection after the server stopped accepting. */
  readonly refused: number;
  /** Keep-alive clients that ran until the load bound instead of being told to close. */
  readonly notTold: number;
  readonly inFlightAtShutdown: number;
}

export interface ServerCase {
  readonly library: ServerLibrary;
  readonly rounds: number;
  readonly medianCloseMs: number;
  readonly maxCloseMs: number;
  readonly dropped: number;
  readonly unread: number;
  readonly refused: number;
  readonly notTold: number;
  readonly medianInFlight: number;
}

const BUSY_CLIENTS = 50;
const IDLE_CLIENTS = 50;
const MAX_REQUESTS = 20_000; // bound of the load loop, whatever a library does
const GRACE_MS = 10_000;

function get(port: number, agent: http.Agent, id: number): Promise<{ body: string; close: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/work/${id}`, agent, headers: { 'x-id': String(id) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve({ body, close: res.headers.connection === 'close' }); });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Installs a library on a fresh server (before it accepts anything) and returns its shutdown call. */
function install(library: ServerLibrary, server: http.Server): () => Promise<unknown> {
  switch (library) {
    case 'lifeguard': {
      const guard = guardServer(server, { keepAliveHint: 'safe', shutdownTimeoutMs: GRACE_MS });
      return () => guard.shutdown();
    }
    case 'lifeguard idleGraceMs=250': {
      const guard = guardServer(server, { keepAliveHint: 'safe', shutdownTimeoutMs: GRACE_MS, idleGraceMs: 250 });
      return () => guard.shutdown();
    }
    case 'http-terminator': {
      const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: GRACE_MS });
      return () => terminator.terminate();
    }
    case 'stoppable': {
      const s = stoppable(server, GRACE_MS);
      return () => new Promise<void>((resolve) => { s.stop(() => { resolve(); }); });
    }
  }
}

async function round(library: ServerLibrary): Promise<ServerRound> {
  const seen = new Set<number>();
  const answered = new Set<number>();
  let inFlight = 0;
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const id = Number(req.headers['x-id']);
    seen.add(id);
    inFlight++;
    res.on('close', () => { inFlight--; });
    setTimeout(() => { res.end(`done ${id}`); }, 50 + (id % 100));
  });
  const shutdown = install(library, server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const agents: http.Agent[] = [];
  let nextId = 0;
  let unread = 0;
  let refused = 0;
  let notTold = 0;

  // Idle keep-alive clients: one request each, then their socket waits in the agent.
  for (let i = 0; i < IDLE_CLIENTS; i++) {
    const agent = new http.Agent({ keepAlive: true });
    agents.push(agent);
    const id = nextId++;
    await get(port, agent, id);
    answered.add(id);
  }
  const busy = async (): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    while (nextId < MAX_REQUESTS) {
      const id = nextId++;
      try {
        const out = await get(port, agent, id);
        if (out.body === `done ${id}`) answered.add(id);
        if (out.close) return;
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') refused++;
        else if (!seen.has(id)) unread++;
        return;
      }
    }
    notTold++;
  };
  const load = Promise.all(Array.from({ length: BUSY_CLIENTS }, busy));
  const warmUntil = Date.now() + 10_000;
  while (answered.size < IDLE_CLIENTS + 150 && Date.now() < warmUntil) await new Promise((resolve) => setTimeout(resolve, 5));

  const closed = new Promise<void>((resolve) => server.once('close', resolve));
  const inFlightAtShutdown = inFlight;
  const started = performance.now();
  void shutdown();
  // Bounded whatever a library does: past its grace and 5 s more, the round is cut short and says so.
  let cut: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => { cut = setTimeout(() => { resolve(true); }, GRACE_MS + 5_000); })]);
  clearTimeout(cut);
  const closeMs = performance.now() - started;
  if (timedOut) {
    server.closeAllConnections();
    for (const agent of agents) agent.destroy();
  }
  await load;
  for (const agent of agents) agent.destroy();
  const dropped = [...seen].filter((id) => !answered.has(id)).length;
  process.stderr.write(`  server bench: ${library} closed in ${closeMs.toFixed(1)} ms${timedOut ? ' (CUT SHORT: the server never closed)' : ''}, dropped ${dropped}, reset before read ${unread}, refused ${refused}\n`);
  return { library, closeMs, dropped, unread, refused, notTold, inFlightAtShutdown };
}

/** `rounds` rounds per library, interleaved so that no library always runs first or on a warmer process. */
export async function benchServer(rounds: number): Promise<ServerCase[]> {
  const results: ServerRound[] = [];
  for (let r = 0; r < rounds; r++) {
    const n = SERVER_LIBRARIES.length;
    const order = [...SERVER_LIBRARIES.slice(r % n), ...SERVER_LIBRARIES.slice(0, r % n)];
    for (const library of order) results.push(await round(library));
  }
  return SERVER_LIBRARIES.map((library) => {
    const mine = results.filter((x) => x.library === library);
    return {
      library,
      rounds: mine.length,
      medianCloseMs: median(mine.map((x) => x.closeMs)),
      maxCloseMs: Math.max(...mine.map((x) => x.closeMs)),
      dropped: mine.reduce((n, x) => n + x.dropped, 0),
      unread: mine.reduce((n, x) => n + x.unread, 0),
      refused: mine.reduce((n, x) => n + x.refused, 0),
      notTold: mine.reduce((n, x) => n + x.notTold, 0),
      medianInFlight: median(mine.map((x) => x.inFlightAtShutdown)),
    };
  });
}

export const SERVER_SCENARIO = `${BUSY_CLIENTS} keep-alive clients looping on requests of 50-150 ms plus ${IDLE_CLIENTS} idle keep-alive sockets, loopback, grace ${GRACE_MS} ms`;

// ---- the guard's per-request overhead ----------------------------------------------------------------

export const OVERHEAD_VARIANTS = ['plain', 'guardServer()', "guardServer({ keepAliveHint: 'safe' })"] as const;
export type OverheadVariant = (typeof OVERHEAD_VARIANTS)[number];

export interface OverheadResult {
  readonly concurrency: number;
  readonly slices: number;
  readonly sliceMs: number;
  /** Requests answered per second, by variant, summed over its slices. */
  readonly perSecond: Readonly<Record<OverheadVariant, number>>;
  /** Throughput of each variant over the plain server's (1.00x = no overhead): the median of the per-rotation ratios. */
  readonly ratio: Readonly<Record<OverheadVariant, number>>;
}

interface LoadOrder {
  readonly role: 'lifeguard-server-overhead-load';
  readonly ports: readonly number[];
  readonly concurrency: number;
  readonly slices: number;
  readonly sliceMs: number;
  readonly warmMs: number;
}

/**
 * The load generator, in a worker thread so that the client's work is not billed to the server's event
 * loop: `concurrency` keep-alive loops on one server at a time, the servers taking turns slice by slice.
 */
async function runLoad(order: LoadOrder): Promise<number[][]> {
  const agents = order.ports.map((port) => ({ port, agent: new http.Agent({ keepAlive: true, maxSockets: order.concurrency }) }));
  const hit = (port: number, agent: http.Agent): Promise<void> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/items/42?q=1', agent }, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', reject);
    }).on('error', reject);
  });
  const slice = async (port: number, agent: http.Agent, ms: number): Promise<number> => {
    let n = 0;
    const until = performance.now() + ms;
    await Promise.all(Array.from({ length: order.concurrency }, async () => {
      while (performance.now() < until) {
        await hit(port, agent);
        n++;
      }
    }));
    return n;
  };
  for (const { port, agent } of agents) await slice(port, agent, order.warmMs);
  const counts = agents.map(() => [] as number[]);
  for (let i = 0; i < order.slices; i++) {
    // Rotated each slice, so that no server always follows the same one.
    for (let k = 0; k < agents.length; k++) {
      const j = (i + k) % agents.length;
      const target = agents[j];
      if (target !== undefined) counts[j]?.push(await slice(target.port, target.agent, order.sliceMs));
    }
  }
  for (const { agent } of agents) agent.destroy();
  return counts;
}

if (!isMainThread && (workerData as Partial<LoadOrder> | null)?.role === 'lifeguard-server-overhead-load') {
  void runLoad(workerData as LoadOrder).then((counts) => { parentPort?.postMessage(counts); });
}

/**
 * One http server per variant in this process (the same handler: a small JSON answer), loaded in turn
 * by a worker thread. Bounded: warm-up plus `slices` x `sliceMs` per variant.
 */
export async function benchServerOverhead(slices: number, sliceMs: number, concurrency = 32): Promise<OverheadResult> {
  const servers = OVERHEAD_VARIANTS.map((variant) => {
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(`{"path":${JSON.stringify(req.url ?? '')}}`);
    });
    // The default hint is node's, which the guard rightly warns about (5 s hint, 5 s close): not this bench's subject.
    if (variant === 'guardServer()') guardServer(server, { name: 'bench-default' }).on('warning', () => undefined);
    if (variant === "guardServer({ keepAliveHint: 'safe' })") guardServer(server, { name: 'bench-safe', keepAliveHint: 'safe' }).on('warning', () => undefined);
    return server;
  });
  const ports: number[] = [];
  for (const server of servers) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push((server.address() as net.AddressInfo).port);
  }
  try {
    const order: LoadOrder = { role: 'lifeguard-server-overhead-load', ports, concurrency, slices, sliceMs, warmMs: Math.min(1000, sliceMs) };
    const worker = new Worker(new URL(import.meta.url), { workerData: order });
    const counts = await new Promise<number[][]>((resolve, reject) => {
      worker.once('message', (m: number[][]) => { resolve(m); });
      worker.once('error', reject);
    });
    await worker.terminate();
    const perSecond = Object.fromEntries(OVERHEAD_VARIANTS.map((v, i) => [v, (counts[i] ?? []).reduce((a, b) => a + b, 0) / ((slices * sliceMs) / 1000)])) as Record<OverheadVariant, number>;
    // Each slice's count over the plain server's in the same rotation (adjacent in time): the median of
    // those ratios shrugs off a slice that another process on the machine slowed down.
    const plain = counts[0] ?? [];
    const ratio = Object.fromEntries(OVERHEAD_VARIANTS.map((v, i) => [v, median((counts[i] ?? []).map((n, k) => n / (plain[k] ?? NaN)))])) as Record<OverheadVariant, number>;
    return { concurrency, slices, sliceMs, perSecond, ratio };
  } finally {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }
}
