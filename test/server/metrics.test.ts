import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, serverSamples } from '../../src/server/index.js';
import { closeServer, listen, waitFor } from './helpers.js';

describe('server figures', () => {
  it('count connections by state, half-closed, reaped and the shutdown duration of every live guard', async () => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => { s.resume(); });
    const guard = guardServer(server, { name: 'figures', halfClosedTimeoutMs: 60_000 });
    const port = await listen(server);
    const a = net.connect({ port, host: '127.0.0.1' });
    const b = net.connect({ port, host: '127.0.0.1' });
    for (const c of [a, b]) c.resume();
    await waitFor('2 accepted', () => guard.stats().open === 2);
    a.end();
    await waitFor('1 half-closed', () => guard.stats().connections['half-closed'] === 1);
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      serverSamples().find((s) => s.labels['server'] === 'figures' && s.name === name && Object.entries(labels).every(([k, v]) => (s.labels as Record<string, string | undefined>)[k] === v))?.value;
    assert.equal(value('server_half_closed'), 1);
    assert.equal(value('server_connections', { state: 'open' }), 1);
    assert.equal(value('server_connections', { state: 'half-closed' }), 1);
    assert.equal(value('server_connections_accepted_total'), 2);
    assert.equal(value('server_ready'), 1);
    assert.equal(value('server_shutdown_duration_seconds'), undefined);
    const report = await guard.shutdown({ timeoutMs: 2_000 });
    assert.equal(guard.stats().lastShutdownMs, report.durationMs);
    assert.equal(value('server_shutdown_duration_seconds'), report.durationMs / 1000);
    await waitFor('closed', () => guard.closed);
    assert.equal(value('server_shutdown_duration_seconds'), report.durationMs / 1000, 'closed with its server, the guard is still listed');
    assert.equal(value('server_ready'), 0);
    guard.close();
    assert.equal(value('server_half_closed'), undefined, 'a guard closed by hand is no longer listed');
    a.destroy();
    b.destroy();
    await closeServer(server).catch(() => undefined);
  });
});
