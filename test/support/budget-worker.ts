/**
 * One process of the fleet in the multi-process budget tests (forked by test/budget/fleet.test.ts).
 *
 * It runs a Lifeguard pool of raw keep-alive HTTP connections to the capped server, limited by a shared
 * RedisBudget (or by nothing, for the control run that reproduces incident 2), and drives `concurrency`
 * request loops through it until told to stop, `requests` are done, or `maxRunMs` passes. It reports
 * progress over IPC every 100 ms and a final report when done, then exits by itself (no handle left).
 *
 * Config: JSON in argv[2], see {@link WorkerConfig}. Messages to the parent: {@link WorkerMessage}.
 */
import net from 'node:net';
import { Cluster } from 'ioredis';
import { Pool } from '../../src/index.js';
import { RedisBudget, type RedisBudgetOptions } from '../../src/budget/index.js';

export interface WorkerConfig {
  readonly name: string;
  readonly serverPort: number;
  /** null: no budget (the control run). Else one server, a Sentinel set, or a cluster's seed nodes (an ioredis Cluster client is passed). */
  readonly redis: WorkerRedis | null;
  readonly budgetKey: string;
  readonly keyPrefix: string;
  readonly limit: number;
  readonly permitTtlMs: number;
  readonly recoveryGraceMs?: number;
  readonly poolMax: number;
  readonly concurrency: number;
  readonly workMs: number;
  readonly acquireTimeoutMs: number;
  /**
   * Pool maxLifetimeMs (0: never). A busy pool never has an idle connection to give back, so without a
   * lifetime the first processes to get permits keep them; a lifetime rotates them through the budget's
   * first-come first-served line, so every process gets its share.
   */
  readonly maxLifetimeMs: number;
  /** Stop after this many requests in total (undefined: until told). */
  readonly requests?: number;
  /** Hard bound on the run. */
  readonly maxRunMs: number;
}

interface Address {
  readonly host: string;
  readonly port: number;
}
export type WorkerRedis = Address | { readonly sentinels: readonly Address[]; readonly name: string } | { readonly cluster: readonly Address[] };

export interface Progress {
  readonly ok: number;
  readonly failed: number;
  /** Failures by code: the error's `code`, with its cause's code after an arrow when it has one. */
  readonly errors: Record<string, number>;
  readonly lastError: string | null;
  readonly held: number;
  readonly holderId: string | null;
  readonly poolSize: number;
}

export type WorkerMessage =
  | ({ readonly type: 'progress' } & Progress)
  | ({ readonly type: 'done'; readonly leftover: string[] } & Progress);

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
const send = (message: WorkerMessage): void => {
  if (process.connected) process.send?.(message);
};

/** One HTTP/1.1 keep-alive GET on a raw socket; resolves with the status once the whole body arrived. */
function get(socket: net.Socket, path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('connection closed during the request'));
    };
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString('latin1');
      const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffer.length < end + 4 + length) return;
      cleanup();
      resolve(Number(head.split(' ')[1]));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n`);
  });
}

class HttpStatusError extends Error {
  readonly code: string;
  constructor(status: number) {
    super(`HTTP ${status}`);
    this.code = `HTTP_${status}`;
  }
}

const cluster = config.redis !== null && 'cluster' in config.redis ? new Cluster(config.redis.cluster.map((a) => ({ ...a })), { lazyConnect: true }) : null;
function redisOption(r: WorkerRedis): RedisBudgetOptions['redis'] {
  if ('cluster' in r) return cluster ?? r.cluster.map((a) => ({ ...a }))[0] ?? {};
  if ('sentinels' in r) return { sentinels: r.sentinels.map((a) => ({ ...a })), name: r.name };
  return { host: r.host, port: r.port };
}

const budget = config.redis === null ? undefined : new RedisBudget({
  redis: redisOption(config.redis),
  key: config.budgetKey,
  keyPrefix: config.keyPrefix,
  limit: config.limit,
  permitTtlMs: config.permitTtlMs,
  commandTimeoutMs: Math.floor(config.permitTtlMs / 5),
  recoveryGraceMs: config.recoveryGraceMs ?? config.permitTtlMs,
  acquireTimeoutMs: config.acquireTimeoutMs,
});

const pool = new Pool<net.Socket>({
  name: config.name,
  max: config.poolMax,
  acquireTimeoutMs: config.acquireTimeoutMs,
  createRetryInitialDelayMs: 20,
  createRetryMaxDelayMs: 300,
  idleTimeoutMs: 0,
  maxLifetimeMs: config.maxLifetimeMs,
  leakDetection: 'off',
  ...(budget === undefined ? {} : { budget }),
  factory: {
    create: ({ signal, invalidate }) => new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: config.serverPort, signal });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', () => undefined); // 'close' follows and invalidates
        socket.once('close', () => {
          invalidate(new Error('the server closed the connection'));
        });
        socket.setNoDelay(true);
        resolve(socket);
      });
    }),
    // Resolves only once the socket is fully closed (the server has seen our FIN): the permit goes
    // back after this, so another process can never connect while the server still counts us.
    destroy: (socket) => new Promise<void>((resolve) => {
      if (socket.closed) {
        resolve();
        return;
      }
      const force = setTimeout(() => socket.destroy(), 1000);
      socket.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      socket.end();
    }),
  },
});

let ok = 0;
let failed = 0;
let issued = 0;
let lastError: string | null = null;
const errors: Record<string, number> = {};
let stopping = false;

function codeOf(error: unknown): string {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof e?.code === 'string' ? e.code : 'UNKNOWN';
  const cause = typeof e?.cause?.code === 'string' ? e.cause.code : null;
  return cause === null ? code : `${code}<-${cause}`;
}

function progress(): Progress {
  return { ok, failed, errors: { ...errors }, lastError, held: budget?.stats().held ?? 0, holderId: budget?.holderId ?? null, poolSize: pool.stats().size };
}

async function loop(): Promise<void> {
  while (!stopping && (config.requests === undefined || issued < config.requests)) {
    issued++;
    try {
      const status = await pool.use(async (socket) => {
        const s = await get(socket, `/work?ms=${config.workMs}`);
        if (s !== 200) throw new HttpStatusError(s);
        return s;
      });
      if (status === 200) ok++;
    } catch (error) {
      failed++;
      const code = codeOf(error);
      errors[code] = (errors[code] ?? 0) + 1;
      lastError = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
      // Never a hot loop while something is down.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

process.on('message', (message) => {
  if (message === 'stop') stopping = true;
});
const hardStop = setTimeout(() => { stopping = true; }, config.maxRunMs);
const ticker = setInterval(() => {
  send({ type: 'progress', ...progress() });
}, 100);

await Promise.all(Array.from({ length: config.concurrency }, () => loop()));
clearTimeout(hardStop);
clearInterval(ticker);
await pool.close({ timeoutMs: 2000 });
await budget?.close();
cluster?.disconnect();
// What this process still holds besides the IPC channel to the parent: the test asserts it is nothing.
const leftover = process.getActiveResourcesInfo().filter((type) => type !== 'PipeWrap' && type !== 'TTYWrap');
send({ type: 'done', leftover, ...progress() });
process.disconnect();
