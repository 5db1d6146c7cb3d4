import net from 'node:net';

/**
 * A loopback TCP server that echoes lines and counts its concurrent connections (what the remote sees).
 * With `idleMs`, it closes connections idle that long, as databases and load balancers do.
 */
export class EchoServer {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  peak = 0;

  constructor(idleMs = 0) {
    this.#server = net.createServer((socket) => {
      if (idleMs > 0) socket.setTimeout(idleMs, () => { socket.end(); });
      this.#sockets.add(socket);
      this.peak = Math.max(this.peak, this.#sockets.size);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => { resolve(); }));
  }
}
