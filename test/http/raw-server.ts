/** A loopback HTTP/1.x server on raw sockets, for responses node's http server would not send (HTTP/1.0, no keep-alive hint, chosen idle closes). */
import net from 'node:net';

export interface RawServer {
  readonly url: string;
  readonly port: number;
  /** Requests whose whole head (and body) arrived. */
  readonly requests: number;
  readonly accepted: number;
  close(): Promise<void>;
}

export interface RawServerOptions {
  /** The bytes of the response to a request (head and body), by request number (from 1). */
  respond(n: number, head: string): string | Buffer;
  /** Close the connection right after the response. @default false */
  readonly closeAfter?: boolean;
  /** Close a connection idle this long after its last response (ms): a keep-alive timeout it never announces. @default never */
  readonly idleCloseMs?: number;
}

/** Starts a server that answers each request with `respond()`; bodies by Content-Length only. */
export async function startRawServer(options: RawServerOptions): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  let requests = 0;
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let buffer = Buffer.alloc(0);
    let idle: NodeJS.Timeout | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (idle !== null) clearTimeout(idle);
      idle = null;
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        buffer = buffer.subarray(end + 4 + length);
        requests++;
        socket.write(options.respond(requests, head));
        if (options.closeAfter === true) {
          socket.end();
          return;
        }
        if (options.idleCloseMs !== undefined) {
          idle = setTimeout(() => { socket.end(); }, options.idleCloseMs);
        }
      }
    });
    socket.on('close', () => { if (idle !== null) clearTimeout(idle); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() { return requests; },
    get accepted() { return accepted; },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => { resolve(); });
    }),
  };
}
