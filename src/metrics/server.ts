/**
 * Server-side figures of every live `lifeguard/server` guard, named once for both exporters, the
 * dashboard and the doctor: connections by state, half-closed, CLOSE_WAIT (from the kernel), accepted,
 * reaped by code, readiness and the last shutdown's duration.
 */
import { readProcessSockets, type ProcOptions } from '../doctor/proc.js';
import { ServerCodes } from '../server/errors.js';
import type { ServerGuard } from '../server/guard.js';
import { servers } from '../server/registry.js';
import type { ConnectionState, ServerGuardStats } from '../server/types.js';

/** A sample's label keys; the exporters name them (`server` in Prometheus, `lifeguard.server.name` in OpenTelemetry). */
export type ServerLabel = 'server' | 'state' | 'code';

export interface ServerFigure {
  /** Prometheus name without the prefix (`lifeguard_` by default). */
  readonly prom: string;
  readonly otel: string;
  readonly unit: string;
  readonly help: string;
  /** `counter`: a running total since the guard started; `gauge`: a reading. */
  readonly type: 'gauge' | 'counter';
  readonly labels: readonly ServerLabel[];
}

/** OpenTelemetry attribute of each label key. */
export const SERVER_ATTRIBUTES: Readonly<Record<ServerLabel, string>> = Object.freeze({
  server: 'lifeguard.server.name',
  state: 'lifeguard.server.connection.state',
  code: 'lifeguard.server.reap.code',
});

export const SERVER_FIGURES = Object.freeze({
  connections: { prom: 'server_connections', otel: 'lifeguard.server.connection.count', unit: '{connection}', type: 'gauge', labels: ['server', 'state'], help: 'Open server connections by state: open (raw net), active, idle, upgraded, half-closed, ending.' },
  halfClosed: { prom: 'server_half_closed', otel: 'lifeguard.server.connection.half_closed', unit: '{connection}', type: 'gauge', labels: ['server'], help: 'Connections whose peer half-closed (sent FIN), the guard\'s count, ended ones included until they close.' },
  closeWait: { prom: 'server_close_wait', otel: 'lifeguard.server.connection.close_wait', unit: '{connection}', type: 'gauge', labels: ['server'], help: 'The kernel\'s count of this process\'s sockets in CLOSE_WAIT on the server\'s port (Linux; untracked sockets included).' },
  accepted: { prom: 'server_connections_accepted_total', otel: 'lifeguard.server.connection.accepted', unit: '{connection}', type: 'counter', labels: ['server'], help: 'Connections accepted since the guard started.' },
  reaped: { prom: 'server_connections_reaped_total', otel: 'lifeguard.server.connection.reaped', unit: '{connection}', type: 'counter', labels: ['server', 'code'], help: 'Connections the guard ended (LG_SERVER_HALF_CLOSED, LG_SERVER_IDLE) or destroyed after they did not close (LG_SERVER_DESTROYED).' },
  ready: { prom: 'server_ready', otel: 'lifeguard.server.ready', unit: '1', type: 'gauge', labels: ['server'], help: '1 while the server is ready, 0 from the moment shutdown() begins.' },
  shutdownDuration: { prom: 'server_shutdown_duration_seconds', otel: 'lifeguard.server.shutdown.duration', unit: 's', type: 'gauge', labels: ['server'], help: 'Duration of the last graceful shutdown (absent before one finished).' },
} satisfies Record<string, ServerFigure>);

export interface ServerSample {
  readonly figure: ServerFigure;
  /** Prometheus-style name, without the `lifeguard_` prefix exporters add. */
  readonly name: string;
  /** OpenTelemetry-style name. */
  readonly otel: string;
  readonly help: string;
  readonly labels: Readonly<Partial<Record<ServerLabel, string>>>;
  readonly value: number;
}

export const SERVER_STATES: readonly ConnectionState[] = Object.freeze(['open', 'active', 'idle', 'upgraded', 'half-closed', 'ending']);

const REAP_CODES = [
  [ServerCodes.HALF_CLOSED, 'halfClosed'],
  [ServerCodes.IDLE, 'idle'],
  [ServerCodes.DESTROYED, 'destroyed'],
] as const;

function sample(figure: ServerFigure, labels: ServerSample['labels'], value: number): ServerSample {
  return { figure, name: figure.prom, otel: figure.otel, help: figure.help, labels, value };
}

/** The samples of one guard's stats; `halfClosed` from its connections (state `ending` hides a half-close). */
function samplesOf(stats: ServerGuardStats, halfClosed: number): ServerSample[] {
  const F = SERVER_FIGURES;
  const server = { server: stats.server };
  const out = SERVER_STATES.map((state) => sample(F.connections, { ...server, state }, stats.connections[state]));
  out.push(sample(F.halfClosed, server, halfClosed));
  out.push(sample(F.accepted, server, stats.accepted));
  for (const [code, key] of REAP_CODES) out.push(sample(F.reaped, { ...server, code }, stats.reaped[key]));
  out.push(sample(F.ready, server, stats.ready ? 1 : 0));
  if (stats.lastShutdownMs !== null) out.push(sample(F.shutdownDuration, server, stats.lastShutdownMs / 1000));
  return out;
}

/**
 * One reading of every live server guard (or of those given), for exporters, the dashboard and the
 * doctor. Guards sharing a name are summed, as pools sharing one are. Synchronous and cheap: the
 * guards' own counts; the kernel's CLOSE_WAIT count is {@link serverCloseWait}.
 */
export function serverSamples(guards: readonly ServerGuard[] = servers()): ServerSample[] {
  const byKey = new Map<string, ServerSample>();
  for (const guard of guards) {
    const halfClosed = guard.connections().filter((c) => c.halfClosedMs !== null).length;
    for (const s of samplesOf(guard.stats(), halfClosed)) {
      const key = `${s.name}\0${JSON.stringify(s.labels)}`;
      const seen = byKey.get(key);
      // ready: 1 only when every guard of the name is; durations: the longest.
      const value = seen === undefined ? s.value : s.figure === SERVER_FIGURES.ready ? Math.min(seen.value, s.value)
        : s.figure === SERVER_FIGURES.shutdownDuration ? Math.max(seen.value, s.value) : seen.value + s.value;
      byKey.set(key, { ...s, value });
    }
  }
  return [...byKey.values()];
}

/**
 * The kernel's count of this process's sockets in CLOSE_WAIT on each guarded server's TCP port: what
 * incident 5 piled up, sockets accepted before the guard included. Linux only: resolves to no sample
 * where `/proc` cannot be read (and for servers on a pipe or not listening). Reads the process's
 * descriptors and TCP tables once per call; it is not free with tens of thousands of sockets, which is
 * why the exporters read it at scrape time only.
 */
export async function serverCloseWait(guards: readonly ServerGuard[] = servers(), options?: ProcOptions): Promise<ServerSample[]> {
  const ports = new Map<string, Set<number>>();
  for (const guard of guards) {
    const address = guard.server.address();
    const set = ports.get(guard.name) ?? new Set<number>();
    if (address !== null && typeof address === 'object') set.add(address.port);
    ports.set(guard.name, set);
  }
  if (ports.size === 0 || process.platform !== 'linux') return [];
  let sockets;
  try {
    sockets = await readProcessSockets(process.pid, options);
  } catch {
    return []; // no /proc, no permission: the series is absent rather than a wrong 0
  }
  const out: ServerSample[] = [];
  for (const [server, set] of ports) {
    if (set.size === 0) continue;
    let n = 0;
    for (const s of sockets) if (s.state === 'CLOSE_WAIT' && s.remote.port !== 0 && set.has(s.local.port)) n++;
    out.push(sample(SERVER_FIGURES.closeWait, { server }, n));
  }
  return out;
}
