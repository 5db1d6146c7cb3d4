/**
 * The stalled holder of test/budget/stall.test.ts: holds the one permit of a RedisBudget and uses a
 * keep-alive connection to the protected server in a loop of request + CPU work, until the permit is no
 * longer valid; then closes the connection, gives the permit back and queues for it again. The parent
 * stops and continues it with SIGSTOP/SIGCONT.
 *
 * Config: JSON in argv[2] ({@link StallHolderConfig}). `check: 'validUntil'` checks
 * `permit.validUntil > clock.now()` before each use (what the pool does before lending); `check: 'lost'`
 * trusts the `permit.lost` signal alone (the control: a timer that cannot run before I/O callbacks).
 *
 * `via: 'pool'` holds the connection through a `Pool` with `budget` instead (the pool takes the permit
 * per create and checks `validUntil` before each lend): every request is one `pool.use()`. `via:
 * 'raw-lease'` is its control: one lease per permit, its raw socket used across requests outside the
 * pool, so nothing checks the permit between requests.
 */
import net from 'node:net';
import { RedisBudget, type Permit } from '../../src/budget/index.js';
import { systemClock } from '../../src/internal/clock.js';
import { Pool, type CreateContext } from '../../src/index.js';

export interface StallHolderConfig {
  readonly serverPort: number;
  readonly redis: { readonly host: string; readonly port: number };
  readonly keyPrefix: string;
  readonly permitTtlMs: number;
  readonly commandTimeoutMs: number;
  readonly check: 'validUntil' | 'lost';
  /** CPU work between requests (busy loop), ms. */
  readonly cpuMs: number;
  readonly maxRunMs: number;
  /** How the holder reaches its connection: on its own permit (default), through a budgeted pool, or a pool lease held across requests. */
  readonly via?: 'permit' | 'pool' | 'raw-lease';
}

export type StallHolderMessage =
  | { readonly type: 'holding'; readonly tenure: number }
  | { readonly type: 'uses'; readonly tenure: number; readonly uses: number }
  /**
   * The process was stopped between a passing check and the return of its write: either after the
   * write system call (harmless: the request reached the server before the stop) or in the microseconds
   * between the comparison and the system call, the one window no check can close.
   */
  | { readonly type: 'raced'; readonly tenure: number; readonly gapMs: number }
  /** windowUs: mean time from the check (or the call that made it) to the return of the write, µs. */
  | { readonly type: 'done'; readonly tenures: number; readonly uses: number; readonly windowUs: number };

const config = JSON.parse(process.argv[2] ?? '{}') as StallHolderConfig;
const send = (message: StallHolderMessage): void => {
  if (process.connected) process.send?.(message);
};

const budget = new RedisBudget({ redis: config.redis, key: 'stall', keyPrefix: config.keyPrefix, limit: 1, permitTtlMs: config.permitTtlMs, commandTimeoutMs: config.commandTimeoutMs, recoveryGraceMs: 0, acquireTimeoutMs: Infinity });

function valid(permit: Permit): boolean {
  if (permit.lost.aborted) return false;
  if (config.check === 'lost') return true;
  // The pool's hot-path comparison (after the pool restructuring, Permit has validUntil).
  return (permit as Permit & { readonly validUntil: number }).validUntil > systemClock.now();
}

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: config.serverPort });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/**
 * Sends one request if `allowed()` (checked right before the write); false if not. `since`: when the
 * check that allowed it happened, if before this call (the pool's lend check).
 */
function get(socket: net.Socket, path: string, allowed: () => boolean, since?: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('latin1');
      if (!buffer.includes('\r\n\r\n')) return;
      const length = Number(/content-length:\s*(\d+)/i.exec(buffer)?.[1] ?? 0);
      if (buffer.length < buffer.indexOf('\r\n\r\n') + 4 + length) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      socket.off('data', onData);
      reject(new Error('connection closed'));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    const request = `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`;
    // Read before the check, not after it: a stop landing between allowed() and a clock read taken after
    // it went uncounted as a race (a gap of microseconds from that read), and its write was then reported as
    // a use after the permit changed hands, 1 ms after SIGCONT (seen once in CI).
    const checkedAt = since ?? systemClock.now();
    if (!allowed()) {
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(false);
      return;
    }
    socket.write(request);
    const gapMs = systemClock.now() - checkedAt;
    if (gapMs > config.permitTtlMs / 4) send({ type: 'raced', tenure: tenures, gapMs: Math.round(gapMs) });
    else {
      windowSum += gapMs;
      windowCount++;
    }
  });
}

function closeSocket(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) {
      resolve();
      return;
    }
    socket.once('close', () => { resolve(); });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  });
}

let stopping = false;
let tenures = 0;
let uses = 0;
let windowSum = 0;
let windowCount = 0;
process.on('message', (message) => {
  if (message === 'stop') stopping = true;
});
const hardStop = setTimeout(() => { stopping = true; }, config.maxRunMs);
const cpuWork = (): void => {
  const until = systemClock.now() + config.cpuMs;
  while (systemClock.now() < until) { /* CPU work */ }
};

interface Conn { readonly socket: net.Socket; readonly tenure: number; uses: number }
/** When the pool's last create returned: its hand-over check comes after it. */
let createdAt = 0;
const counted = (conn: Conn): void => {
  uses++;
  conn.uses++;
  if (conn.uses % 10 === 0) send({ type: 'uses', tenure: conn.tenure, uses: conn.uses });
};

if (config.via === 'pool' || config.via === 'raw-lease') {
  const pool = new Pool<Conn>({
    factory: {
      // The budget option has taken the permit by now: one create, one tenure.
      create: async (context: CreateContext) => {
        const socket = await connect();
        socket.once('close', () => { context.invalidate(); });
        socket.on('error', () => { /* a close follows */ });
        tenures++;
        send({ type: 'holding', tenure: tenures });
        createdAt = systemClock.now();
        return { socket, tenure: tenures, uses: 0 };
      },
      destroy: (conn) => closeSocket(conn.socket),
    },
    max: 1,
    budget,
    acquireTimeoutMs: 60_000,
    createTimeoutMs: 60_000,
  });
  while (!stopping) {
    try {
      if (config.via === 'pool') {
        const calledAt = systemClock.now();
        await pool.use(async (conn) => {
          // The pool compared validUntil after both (fast path: inside acquire; else at hand-over).
          if (await get(conn.socket, `/work?ms=2&tenure=${conn.tenure}`, () => true, Math.max(calledAt, createdAt))) counted(conn);
        });
        cpuWork();
      } else {
        const lease = await pool.acquire();
        const conn = lease.resource;
        try {
          // The socket kept across requests: only its revocation (permit.lost, a timer) stops it.
          while (!stopping && await get(conn.socket, `/work?ms=2&tenure=${conn.tenure}`, () => true)) {
            counted(conn);
            cpuWork();
          }
        } finally {
          lease.release();
        }
      }
    } catch {
      // Revoked (the permit was lost) or closed by the server: the pool makes a new one on a new permit.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  await pool.close();
}

while (!stopping && config.via !== 'pool' && config.via !== 'raw-lease') {
  let permit: Permit;
  try {
    permit = await budget.acquire();
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 20));
    continue;
  }
  tenures++;
  send({ type: 'holding', tenure: tenures });
  const socket = await connect();
  let here = 0;
  try {
    while (!stopping) {
      if (!(await get(socket, `/work?ms=2&tenure=${tenures}`, () => valid(permit)))) break;
      uses++;
      here++;
      if (here % 10 === 0) send({ type: 'uses', tenure: tenures, uses: here });
      const until = systemClock.now() + config.cpuMs;
      while (systemClock.now() < until) { /* CPU work */ }
    }
  } catch {
    // The server closed the connection: give the permit back and start again.
  }
  await closeSocket(socket);
  permit.release();
}
clearTimeout(hardStop);
await budget.close();
send({ type: 'done', tenures, uses, windowUs: Math.round(1000 * windowSum / Math.max(1, windowCount)) });
process.disconnect();
