/**
 * A process holding a generated socket set for the doctor benchmark: `connections` loopback connections
 * to a listener of its own, both ends here (2 sockets each), from local address `argv[3]` so several
 * holders do not share one range of ephemeral ports. Prints "ready <pid>" once all are connected;
 * exits when its stdin closes.
 */
import net from 'node:net';

const connections = Number(process.argv[2] ?? '1000');
const localAddress = process.argv[3] ?? '127.0.0.1';
const accepted: net.Socket[] = [];
const server = net.createServer((socket) => { accepted.push(socket); });
await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
const port = (server.address() as net.AddressInfo).port;

const clients: net.Socket[] = [];
const BATCH = 500;
for (let done = 0; done < connections; done += BATCH) {
  const batch = Math.min(BATCH, connections - done);
  await Promise.all(Array.from({ length: batch }, () => new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => { resolve(); });
    socket.once('error', reject);
    clients.push(socket);
  })));
}
// Bounded: a holder past its descriptor limit would wait for accepts that never come.
const deadline = Date.now() + 60_000;
while (accepted.length < connections) {
  if (Date.now() > deadline) throw new Error(`only ${accepted.length} of ${connections} connections accepted in 60 s (descriptor limit?)`);
  await new Promise((resolve) => setTimeout(resolve, 10));
}
// A few in CLOSE_WAIT, so the report has a finding to make: the peer hung up, this side never closes.
for (const socket of accepted.slice(0, 10)) socket.end();

process.stdin.once('end', () => {
  // A reset, not a close: no TIME_WAIT left to hold the local ports of the next run.
  for (const socket of [...clients, ...accepted]) socket.resetAndDestroy();
  server.close();
  process.stdin.destroy();
});
process.stdin.resume();
process.stdout.write(`ready ${process.pid}\n`);
