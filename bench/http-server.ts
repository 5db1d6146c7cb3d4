/**
 * The HTTP benchmark's server, run in its own process so that the client being measured has its core to
 * itself: keep-alive, 1 KiB body, no work. Prints its port on stdout, exits when stdin closes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.alloc(1024, 'x');
const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close();
});
