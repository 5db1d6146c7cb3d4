/**
 * A process for the CLI tests to examine: it opens `argv[2]` loopback connections to a server of its own
 * that hangs up at once, and never closes its side, so they sit in CLOSE_WAIT. It prints "ready" when
 * the kernel has them all in that state, and cleans up and exits when its stdin closes or on SIGTERM.
 */
import net from 'node:net';

const count = Number(process.argv[2] ?? '3');
const accepted: net.Socket[] = [];
const server = net.createServer((socket) => {
  accepted.push(socket);
  socket.end();
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as net.AddressInfo).port;

const clients = await Promise.all(Array.from({ length: count }, () => new Promise<net.Socket>((resolve, reject) => {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.once('error', reject);
  // 'end': the server's FIN has arrived and, with allowHalfOpen, our side stays open: CLOSE_WAIT.
  socket.once('end', () => { resolve(socket); });
  socket.resume();
})));

function shutdown(): void {
  for (const socket of [...clients, ...accepted]) socket.destroy();
  server.close();
  process.stdin.destroy();
}
process.once('SIGTERM', shutdown);
process.stdin.once('end', shutdown);
process.stdin.resume();
process.stdout.write(`ready ${port}\n`);
