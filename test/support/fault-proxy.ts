import net from 'node:net';

/** What the proxy does to one client connection. */
export interface FaultBehaviour {
  /** Delay every chunk forwarded in either direction by this long. */
  readonly latencyMs?: number;
  /** Reset (RST) the client connection once this many response bytes were forwarded on it. */
  readonly resetAfterResponseBytes?: number;
  /** Close the client connection (FIN both ways, like a server's keep-alive timeout) after it has been idle this long. */
  readonly closeIdleAfterMs?: number;
  /** Accept the connection and never answer, never close. */
  readonly hang?: boolean;
}

export interface FaultProxyOptions {
  /** Where connections are forwarded (loopback only). */
  readonly target: { readonly host: string; readonly port: number };
  /** Behaviour of every connection, or per connection by its sequence number (1, 2, ...). */
  readonly behaviour?: FaultBehaviour | ((connection: number) => FaultBehaviour);
  /** Past this many concurrent forwarded connections, new ones get a raw HTTP answer with `capStatus` and are closed. */
  readonly cap?: number;
  /** Status of the capped answer. @default 503 */
  readonly capStatus?: 401 | 503;
}

const REASONS: Record<number, string> = { 401: 'Unauthorized', 503: 'Service Unavailable' };

/**
 * A loopback TCP proxy that injects faults per connection: latency, a reset in the middle of a
 * response, idle close, half-close, accept-then-hang, and a connection cap answered with a raw 401 or
 * 503 (incident 2's registry). It counts concurrent forwarded connections and the most it ever saw.
 * `close()` destroys every socket it holds and its server.
 */
export class FaultProxy {
  readonly #server: net.Server;
  readonly #options: FaultProxyOptions;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Forwarded client sockets while open: what {@link halfClose} acts on. */
  readonly #clients = new Set<net.Socket>();
  #seq = 0;
  #open = 0;
  #peak = 0;
  #capped = 0;
  #accepted = 0;
  behaviour: FaultBehaviour | ((connection: number) => FaultBehaviour);

  private constructor(options: FaultProxyOptions) {
    this.#options = options;
    this.behaviour = options.behaviour ?? {};
    this.#server = net.createServer((client) => {
      this.#accept(client);
    });
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => {
        resolve();
      });
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forwarded connections open right now. */
  get open(): number {
    return this.#open;
  }

  /** Most forwarded connections open at once since start (or {@link resetPeak}). */
  get peak(): number {
    return this.#peak;
  }

  /** Connections answered with the cap status. */
  get capped(): number {
    return this.#capped;
  }

  /** Connections accepted in total (forwarded or capped). */
  get accepted(): number {
    return this.#accepted;
  }

  /**
   * Half-closes every open forwarded connection now, as a server that closes its side does: FIN to the
   * client, the connection otherwise left open. Called by a test once the client is idle, rather than
   * after an idle timer, so a stall of the machine in the middle of a handshake cannot cut it short.
   * @returns how many were half-closed
   */
  halfClose(): number {
    let n = 0;
    for (const client of this.#clients) {
      if (client.destroyed || client.writableEnded) continue;
      client.end();
      n++;
    }
    return n;
  }

  resetPeak(): void {
    this.#peak = this.#open;
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  #later(fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
  }

  #accept(client: net.Socket): void {
    this.#accepted++;
    this.#track(client);
    const cap = this.#options.cap;
    if (cap !== undefined && this.#open >= cap) {
      this.#capped++;
      const status = this.#options.capStatus ?? 503;
      // Answer once the request arrives, as a real server at its cap does, then close.
      client.once('data', () => {
        client.end(`HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      });
      return;
    }
    const n = ++this.#seq;
    this.#open++;
    this.#peak = Math.max(this.#peak, this.#open);
    this.#clients.add(client);
    client.once('close', () => {
      this.#open--;
      this.#clients.delete(client);
    });
    const b = typeof this.behaviour === 'function' ? this.behaviour(n) : this.behaviour;
    if (b.hang === true) return;
    const upstream = net.connect(this.#options.target.port, this.#options.target.host);
    this.#track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());

    let idleTimer: NodeJS.Timeout | null = null;
    const touch = (): void => {
      if (idleTimer !== null) {
        clearTimeout(idleTimer);
        this.#timers.delete(idleTimer);
        idleTimer = null;
      }
      if (b.closeIdleAfterMs !== undefined) {
        idleTimer = this.#later(() => { client.end(); upstream.end(); }, b.closeIdleAfterMs);
      }
    };
    touch();
    const latency = b.latencyMs ?? 0;
    const forward = (to: net.Socket, chunk: Buffer): void => {
      if (latency > 0) this.#later(() => { if (!to.destroyed) to.write(chunk); }, latency);
      else to.write(chunk);
    };
    let responseBytes = 0;
    client.on('data', (chunk: Buffer) => {
      touch();
      forward(upstream, chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      touch();
      const limit = b.resetAfterResponseBytes;
      if (limit !== undefined && responseBytes + chunk.length >= limit) {
        const head = chunk.subarray(0, Math.max(0, limit - responseBytes));
        responseBytes = limit;
        if (head.length > 0) client.write(head);
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      responseBytes += chunk.length;
      forward(client, chunk);
    });
    client.on('end', () => upstream.end());
  }
}
