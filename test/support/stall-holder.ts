/**
 * The stalled holder of test/budget/stall.test.ts: holds the one permit of a RedisBudget and uses a
 * keep-alive connection to the protected server in a loop of request + CPU work, until the permit is no
 * longer valid; then closes the connection, gives the permit back and queues for it again. The parent
 * stops and continues it with SIGSTOP/SIGCONT.
 *
 * Config: JSON in argv[2] ({@link StallHolderConfig}). `check: 'validUntil'` checks
 * `permit.validUntil > clock.now()` before each use (what the pool does before lending); `check: 'lost'`
 * trusts the `permit.lost` signal alone (the control: a timer that cannot run before I/O callbacks).
 */
import net from 'node:net';
import { RedisBudget, type Permit } from '../../src/budget/index.js';
import { systemClock } from '../../src/internal/clock.js';

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
  | { readonly type: 'done'; readonly tenures: number; readonly uses: number };

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

/** Sends one request if `permit` is still valid (checked right before the write); false if it was not. */
function get(socket: net.Socket, path: string, permit: Permit): Promise<boolean> {
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
    if (!valid(permit)) {
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(false);
      return;
    }
    const checkedAt = systemClock.now();
    socket.write(request);
    const gapMs = systemClock.now() - checkedAt;
    if (gapMs > config.permitTtlMs / 4) send({ type: 'raced', tenure: tenures, gapMs: Math.round(gapMs) });
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
process.on('message', (message) => {
  if (message === 'stop') stopping = true;
});
const hardStop = setTimeout(() => { stopping = true; }, config.maxRunMs);

while (!stopping) {
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
      if (!(await get(socket, `/work?ms=2&tenure=${tenures}`, permit))) break;
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
send({ type: 'done', tenures, uses });
process.disconnect();
