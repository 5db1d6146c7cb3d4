/** Server-side figures of every live `lifeguard/server` guard: connections by state, half-closed, reaped, shutdown duration. */
import { servers } from '../server/registry.js';
import type { ConnectionState } from '../server/types.js';

export interface ServerSample {
  /** Prometheus-style name, without the `lifeguard_` prefix exporters add. */
  readonly name: string;
  /** OpenTelemetry-style name. */
  readonly otel: string;
  readonly help: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const STATES: readonly ConnectionState[] = ['open', 'active', 'idle', 'upgraded', 'half-closed', 'ending'];

/**
 * One reading of every live server guard, for exporters, the dashboard and the doctor's inbound view.
 * `server_half_closed` is what the guard knows to be in CLOSE_WAIT right now (the peer sent FIN, the
 * application has not ended the socket); the doctor's kernel count of CLOSE_WAIT should agree with it.
 */
export function serverSamples(): ServerSample[] {
  const out: ServerSample[] = [];
  for (const guard of servers()) {
    const stats = guard.stats();
    const server = { server: stats.server };
    for (const state of STATES) {
      out.push({ name: 'server_connections', otel: 'lifeguard.server.connection.count', help: 'Open server connections by state.', labels: { ...server, state }, value: stats.connections[state] });
    }
    out.push({ name: 'server_half_closed', otel: 'lifeguard.server.connection.half_closed', help: 'Connections whose peer half-closed and that the application has not ended (CLOSE_WAIT).', labels: server, value: stats.connections['half-closed'] });
    out.push({ name: 'server_accepted_total', otel: 'lifeguard.server.connection.accepted', help: 'Connections accepted since the guard started.', labels: server, value: stats.accepted });
    for (const [reason, value] of Object.entries(stats.reaped)) {
      out.push({ name: 'server_reaped_total', otel: 'lifeguard.server.connection.reaped', help: 'Connections the guard ended (half-closed, idle) or destroyed after they did not close.', labels: { ...server, reason }, value });
    }
    out.push({ name: 'server_ready', otel: 'lifeguard.server.ready', help: '1 while the server is ready (no shutdown begun).', labels: server, value: stats.ready ? 1 : 0 });
    if (stats.lastShutdownMs !== null) {
      out.push({ name: 'server_shutdown_duration_ms', otel: 'lifeguard.server.shutdown.duration', help: 'Duration of the last graceful shutdown, in milliseconds.', labels: server, value: stats.lastShutdownMs });
    }
  }
  return out;
}
