import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import { registerOpenTelemetry, registerPrometheus } from '../../src/metrics/index.js';
import { guardServer, type ServerGuard, type ShutdownReport } from '../../src/server/index.js';
import { canCountSockets } from '../support/sockets.js';
import { closeServer, listen, serverSideSockets, waitFor } from '../server/helpers.js';
import { OnDemandReader } from './otel-reader.js';

const LINUX = canCountSockets();

/**
 * A net server (allowHalfOpen) whose application never ends a socket: one client half-closes and stays
 * in CLOSE_WAIT (the guard's timeout is a minute); another stays open.
 */
async function scene(name: string): Promise<{ guard: ServerGuard; clients: net.Socket[]; shutdown: () => Promise<ShutdownReport>; done: () => Promise<void> }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => { s.resume(); });
  const guard = guardServer(server, { name, halfClosedTimeoutMs: 60_000 });
  guard.on('reap', () => { /* counted in stats().reaped */ });
  const port = await listen(server);
  const clients = [net.connect({ port, host: '127.0.0.1' }), net.connect({ port, host: '127.0.0.1' })];
  for (const c of clients) c.resume();
  await waitFor('2 accepted', () => guard.stats().open === 2);
  clients[0]?.end();
  await waitFor('1 half-closed', () => guard.stats().connections['half-closed'] === 1);
  if (LINUX) await waitFor('1 CLOSE_WAIT in the kernel', () => serverSideSockets(port, 'CLOSE_WAIT') === 1);
  return {
    guard, clients,
    shutdown: () => guard.shutdown({ timeoutMs: 2_000 }),
    done: async () => {
      guard.close();
      for (const c of clients) c.destroy();
      await closeServer(server).catch(() => undefined);
    },
  };
}

interface JsonMetric { name: string; type: string; values: { value: number; labels: Record<string, string | number> }[] }

async function promValue(registry: Registry, name: string, labels: Record<string, string>): Promise<{ type: string; value: number | undefined }> {
  const all = (await registry.getMetricsAsJSON()) as unknown as JsonMetric[];
  const metric = all.find((m) => m.name === name);
  assert.ok(metric, `${name} is registered (got ${all.map((m) => m.name).join(', ')})`);
  const found = metric.values.find((v) => Object.keys(v.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l));
  return { type: metric.type, value: found?.value };
}

function otelValue(metrics: MetricData[], name: string, attributes: Record<string, string>): number | undefined {
  const metric = metrics.find((m) => m.descriptor.name === name);
  assert.ok(metric, `${name} exported (got ${metrics.map((m) => m.descriptor.name).join(', ')})`);
  const match = (metric.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
    .find((p) => Object.keys(p.attributes).length === Object.keys(attributes).length && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
  return match?.value as number | undefined;
}

describe('server metrics in the exporters', () => {
  it('Prometheus: server connections by state, half-closed, kernel CLOSE_WAIT, accepted, reaped by code, shutdown duration', async () => {
    const registry = new Registry();
    const prom = registerPrometheus({ registry });
    const s = await scene('prom-server');
    try {
      const server = { server: 'prom-server' };
      assert.deepEqual(await promValue(registry, 'lifeguard_server_connections', { ...server, state: 'half-closed' }), { type: 'gauge', value: 1 });
      assert.equal((await promValue(registry, 'lifeguard_server_connections', { ...server, state: 'open' })).value, 1);
      assert.equal((await promValue(registry, 'lifeguard_server_half_closed', server)).value, 1);
      if (LINUX) assert.equal((await promValue(registry, 'lifeguard_server_close_wait', server)).value, 1, 'the kernel\'s CLOSE_WAIT count on the port');
      assert.deepEqual(await promValue(registry, 'lifeguard_server_connections_accepted_total', server), { type: 'counter', value: 2 });
      assert.equal((await promValue(registry, 'lifeguard_server_connections_reaped_total', { ...server, code: 'LG_SERVER_HALF_CLOSED' })).value, 0);
      assert.equal((await promValue(registry, 'lifeguard_server_ready', server)).value, 1);
      assert.equal((await promValue(registry, 'lifeguard_server_shutdown_duration_seconds', server)).value, undefined, 'no shutdown yet');
      assert.ok(prom.names.includes('lifeguard_server_connections_reaped_total'));

      // Shutting down reports its duration; the guard goes when the server closes, and its series with it.
      const report = await s.shutdown();
      assert.equal(s.guard.stats().lastShutdownMs, report.durationMs);
      await waitFor('guard closed', () => s.guard.closed);
      assert.equal((await promValue(registry, 'lifeguard_server_shutdown_duration_seconds', server)).value, report.durationMs / 1000);
      assert.equal((await promValue(registry, 'lifeguard_server_ready', server)).value, 0);
      s.guard.close();
      assert.equal((await promValue(registry, 'lifeguard_server_half_closed', server)).value, undefined, 'a guard closed by hand is gone');
    } finally {
      prom.close();
      await s.done();
    }
  });

  it('Prometheus: reaped counts by code, from a guard that reaps', async () => {
    const registry = new Registry();
    const prom = registerPrometheus({ registry, prefix: 'app_' });
    const server = net.createServer({ allowHalfOpen: true }, (sock) => { sock.resume(); });
    const guard = guardServer(server, { name: 'reaper', halfClosedTimeoutMs: 50, checkIntervalMs: 10 });
    const reaps: string[] = [];
    guard.on('reap', (r) => { reaps.push(r.code); });
    const port = await listen(server);
    const client = net.connect({ port, host: '127.0.0.1' });
    try {
      client.resume();
      client.on('connect', () => { client.end(); });
      await waitFor('reaped', () => reaps.includes('LG_SERVER_HALF_CLOSED'));
      assert.equal((await promValue(registry, 'app_server_connections_reaped_total', { server: 'reaper', code: 'LG_SERVER_HALF_CLOSED' })).value, 1);
      assert.equal((await promValue(registry, 'app_server_connections_reaped_total', { server: 'reaper', code: 'LG_SERVER_IDLE' })).value, 0);
      assert.equal((await promValue(registry, 'app_server_connections_reaped_total', { server: 'reaper', code: 'LG_SERVER_DESTROYED' })).value, 0);
      if (LINUX) {
        await waitFor('no CLOSE_WAIT', () => serverSideSockets(port, 'CLOSE_WAIT') === 0);
        assert.equal((await promValue(registry, 'app_server_close_wait', { server: 'reaper' })).value, 0);
      }
    } finally {
      prom.close();
      client.destroy();
      guard.close();
      await closeServer(server);
    }
  });

  it('OpenTelemetry: lifeguard.server.* instruments with lifeguard.server.name', async () => {
    const reader = new OnDemandReader();
    const provider = new MeterProvider({ readers: [reader] });
    const otel = registerOpenTelemetry({ meterProvider: provider });
    const s = await scene('otel-server');
    try {
      const name = { 'lifeguard.server.name': 'otel-server' };
      let metrics = await reader.exportNow();
      assert.equal(otelValue(metrics, 'lifeguard.server.connection.count', { ...name, 'lifeguard.server.connection.state': 'half-closed' }), 1);
      assert.equal(otelValue(metrics, 'lifeguard.server.connection.count', { ...name, 'lifeguard.server.connection.state': 'open' }), 1);
      assert.equal(otelValue(metrics, 'lifeguard.server.connection.half_closed', name), 1);
      if (LINUX) assert.equal(otelValue(metrics, 'lifeguard.server.connection.close_wait', name), 1);
      assert.equal(otelValue(metrics, 'lifeguard.server.connection.accepted', name), 2);
      assert.equal(otelValue(metrics, 'lifeguard.server.connection.reaped', { ...name, 'lifeguard.server.reap.code': 'LG_SERVER_HALF_CLOSED' }), 0);
      assert.equal(otelValue(metrics, 'lifeguard.server.ready', name), 1);
      const report = await s.shutdown();
      await waitFor('guard closed', () => s.guard.closed);
      metrics = await reader.exportNow();
      assert.equal(otelValue(metrics, 'lifeguard.server.shutdown.duration', name), report.durationMs / 1000);
      assert.equal(metrics.find((m) => m.descriptor.name === 'lifeguard.server.shutdown.duration')?.descriptor.unit, 's');
      assert.equal(otelValue(metrics, 'lifeguard.server.ready', name), 0);
    } finally {
      otel.close();
      await provider.shutdown();
      await s.done();
    }
  });
});
