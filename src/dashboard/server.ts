import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { optionsRecord } from '../metrics/collector.js';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption } from '../pool/options.js';
import { createHandler, KNOWN_DASHBOARD, type DashboardHandler, type DashboardOptions } from './handler.js';
import type { DashboardState } from './sampler.js';

export interface StartDashboardOptions extends DashboardOptions {
  /** TCP port; 0 picks a free one (read it from `url` or `port`). @default 0 */
  readonly port?: number;
  /**
   * Address to listen on. The page shows acquire stacks and socket endpoints: keep it on loopback, or
   * put it behind your own authentication. @default '127.0.0.1'
   */
  readonly host?: string;
}

/** A running dashboard server. */
export interface Dashboard {
  /** `http://host:port/`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly handler: DashboardHandler;
  state(): DashboardState;
  /** Stops sampling, ends the event streams and open connections, and closes the server. Idempotent. */
  close(): Promise<void>;
}

/** Starts the dashboard on its own HTTP server (loopback by default). */
export async function startDashboard(options?: StartDashboardOptions): Promise<Dashboard> {
  const source = optionsRecord(options, new Set(['port', 'host', ...KNOWN_DASHBOARD]), 'startDashboard');
  const port = numberOption(source, 'port', 0, { integer: true, min: 0 });
  if (port > 65535) throw new InvalidOptionError('port', `invalid option "port": expected an integer between 0 and 65535, got number ${port}`);
  const host = source['host'] ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new InvalidOptionError('host', `invalid option "host": expected a non-empty string, got ${describe(host)}`);
  const { port: _port, host: _host, ...rest } = source;
  const handler = createHandler(rest, '/');
  const server = http.createServer(handler);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await Promise.all([new Promise((resolve) => { server.close(resolve); }), handler.close()]);
    // The failed listen's handle finishes closing on the next turn of the loop: leave nothing behind.
    await new Promise((resolve) => setImmediate(resolve));
    throw new Error(`the dashboard could not listen on ${host}:${port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shown}:${address.port}/`,
    host: address.address,
    port: address.port,
    handler,
    state: () => handler.state(),
    close() {
      closing ??= Promise.all([
        handler.close(),
        new Promise<void>((resolve) => {
          server.close(() => { resolve(); });
          // Keep-alive connections of a browser would hold close() open until they time out.
          server.closeAllConnections();
        }),
      ]).then(() => undefined);
      return closing;
    },
  };
}
