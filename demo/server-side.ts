import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcessSockets } from '../src/doctor/proc.js';
import { guardServer } from '../src/server/index.js';

/**
 * The server side of incident 5, in a few seconds: the same 500 clients half-close their connections to
 * two `net` servers (allowHalfOpen) whose application reads and never ends a socket. The unguarded one
 * keeps all 500 in CLOSE_WAIT; the guarded one ends them after halfClosedTimeoutMs. Counted from the
 * kernel's socket table.
 */
const CLIENTS = 500;
const HALF_CLOSED_MS = 2_000;

/**
 * CLOSE_WAIT sockets on each of `ports` (the server side): the doctor's own reader of the kernel's table,
 * joined on inode with this process's descriptors.
 */
async function closeWaitOn(...ports: number[]): Promise<number[]> {
  const sockets = await readProcessSockets(process.pid);
  return ports.map((port) => sockets.filter((s) => s.state === 'CLOSE_WAIT' && s.local.port === port).length);
}

async function start(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Opens the clients in batches of 100 (file descriptors), each half-closing once connected. */
async function halfClose(port: number): Promise<net.Socket[]> {
  const clients: net.Socket[] = [];
  for (let i = 0; i < CLIENTS; i += 100) {
    await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => { socket.end(); resolve(); });
      socket.on('error', reject);
      clients.push(socket);
    })));
  }
  return clients;
}

export async function serverSide(): Promise<boolean> {
  console.log(`\n== 8. the server side: ${CLIENTS} clients half-close against an unguarded and a guarded server`);
  const accepted: net.Socket[] = [];
  const forgetful = (socket: net.Socket): void => { accepted.push(socket); socket.resume(); };
  const plain = net.createServer({ allowHalfOpen: true }, forgetful);
  const guarded = net.createServer({ allowHalfOpen: true }, forgetful);
  const guard = guardServer(guarded, { name: 'guarded', halfClosedTimeoutMs: HALF_CLOSED_MS, checkIntervalMs: 250 });
  const reaped: string[] = [];
  guard.on('reap', (report) => { reaped.push(report.message); });
  const plainPort = await start(plain);
  const guardedPort = await start(guarded);
  const clients = (await Promise.all([halfClose(plainPort), halfClose(guardedPort)])).flat();
  const accepted2 = async (s: net.Server): Promise<number> => new Promise((resolve) => { s.getConnections((_e, n) => { resolve(n); }); });
  // Accepted by node, not only by the kernel, before the clock starts.
  for (let i = 0; i < 100 && (await accepted2(plain) < CLIENTS || guard.stats().accepted < CLIENTS); i++) await sleep(20);

  let ok = false;
  const started = Date.now();
  for (;;) {
    const [p = 0, g = 0] = await closeWaitOn(plainPort, guardedPort);
    const elapsed = Date.now() - started;
    console.log(`   t=${String(elapsed).padStart(4)} ms  CLOSE_WAIT unguarded: ${String(p).padStart(3)}   guarded: ${String(g).padStart(3)} (halfClosedTimeoutMs=${HALF_CLOSED_MS})`);
    if (elapsed > HALF_CLOSED_MS && g === 0) {
      ok = p === CLIENTS;
      break;
    }
    if (elapsed > HALF_CLOSED_MS + 3_000) break;
    await sleep(400);
  }
  console.log(`   the guard ended ${reaped.length} sockets; the first report: ${reaped[0] ?? 'none'}`);
  const report = await guard.shutdown({ timeoutMs: 1_000 });
  console.log(`   guarded server: ${report.message}`);
  for (const socket of accepted) socket.destroy();
  for (const socket of clients) socket.destroy();
  await new Promise<void>((resolve) => { plain.close(() => { resolve(); }); });
  if (!ok) console.log('   unexpected: the guarded server kept CLOSE_WAIT sockets, or the unguarded one lost some');
  return ok;
}
