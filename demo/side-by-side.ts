import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Factory, type Lease } from '../src/index.js';
import { startDashboard } from '../src/dashboard/index.js';
import { diagnoseSelf, type Finding } from '../src/doctor/index.js';
import { AlertMonitor, MetricsCollector } from '../src/metrics/index.js';
import { EchoServer } from './echo-server.js';
import { roundTrip, socketFactory } from './socket-factory.js';

/**
 * The same workload twice, side by side, each against its own embedded upstream that hangs up on
 * connections idle for 300 ms (as databases and load balancers do):
 * - "leaky": a handler that skips release() on its error path, and connections nobody watches close;
 * - "guarded": pool.use() (released or destroyed on every path), connections evicted when the peer
 *   closes, leases reclaimed after 2 s.
 * The doctor then reads the kernel's socket table and says what it finds in each, the alerts say what
 * they raised, and the dashboard stays up for a bounded time with both pools live.
 */

/** Connects, and nothing more: nobody notices when the server closes an idle connection (CLOSE_WAIT). */
function naiveFactory(port: number): Factory<net.Socket> {
  return {
    create: ({ signal }) => new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', signal, allowHalfOpen: true });
      socket.once('connect', () => { socket.off('error', reject); socket.on('error', () => undefined); resolve(socket); });
      socket.once('error', reject);
    }),
    destroy: (socket) => { socket.destroy(); },
  };
}

const say = (line: string): void => { console.log(`   ${line}`); };

function findingsFor(findings: readonly Finding[], pool: string, port: number): string[] {
  const lines: string[] = [];
  for (const f of findings) {
    const mine = f.details.filter((d) => d.includes(`:${port}`) || d.includes(`"${pool}"`) || d.includes(`pool ${pool}`));
    if (mine.length === 0) continue;
    lines.push(`${f.severity.toUpperCase()} ${f.code}: ${f.title}`);
    for (const d of mine.slice(0, 3)) lines.push(`    - ${d}`);
    if (mine.length > 3) lines.push(`    - ... and ${mine.length - 3} more`);
  }
  return lines;
}

export async function sideBySide(dashboardMs: number, dashboardPort: number): Promise<boolean> {
  const leakyUpstream = new EchoServer(300);
  const guardedUpstream = new EchoServer(300);
  const [leakyPort, guardedPort] = await Promise.all([leakyUpstream.listen(), guardedUpstream.listen()]);
  const collector = new MetricsCollector();
  const alerts = new AlertMonitor({ collector, intervalMs: 250, closeWaitAbove: 3, timeoutWindowMs: 5000, log: false });

  const leaky = new Pool<net.Socket>({ name: 'leaky', factory: naiveFactory(leakyPort), max: 8, acquireTimeoutMs: 300, leakDetection: 'full', leakWarnAfterMs: 500 });
  const guarded = new Pool<net.Socket>({
    name: 'guarded', factory: socketFactory(guardedPort), max: 8, acquireTimeoutMs: 300, idleTimeoutMs: 1000,
    leakDetection: 'full', leakWarnAfterMs: 500, reclaimAfterMs: 2000,
  });
  leaky.on('leak', () => undefined); // the alerts and the doctor report them below
  guarded.on('leak', () => undefined);

  let request = 0;
  // Sessions parked "for later" and never finished: the leases stay reachable, so only release() (or
  // reclaimAfterMs, which this pool does not set) could free them.
  const parked: Lease<net.Socket>[] = [];
  async function leakyHandler(): Promise<void> {
    const lease = await leaky.acquire({ label: `leaky request ${++request}` });
    const reply = await Promise.race([roundTrip(lease.resource, 'hello'), sleep(100, 'no reply')]);
    if (request % 3 === 0 || reply === 'no reply') {
      parked.push(lease); // the bug: this path never comes back to release()
      return;
    }
    lease.release();
  }
  async function guardedHandler(): Promise<void> {
    await guarded.use(async (socket) => {
      const reply = await Promise.race([roundTrip(socket, 'hello'), sleep(100, 'no reply')]);
      if (reply === 'no reply') throw new Error('no reply: this connection is broken'); // use() destroys it
    }, { label: `guarded request ${++request}` });
  }
  /** At most `rounds` rounds, and none started after `forMs`. */
  async function load(rounds: number, pauseMs: number, forMs = Infinity): Promise<void> {
    const deadline = Date.now() + forMs;
    for (let i = 0; i < rounds && Date.now() < deadline; i++) {
      await Promise.all([leakyHandler().catch(() => undefined), guardedHandler().catch(() => undefined)]);
      await sleep(pauseMs);
    }
  }

  console.log('\n== 5. a leaky workload and a guarded one, side by side, against upstreams that close idle connections');
  say(`leaky   -> 127.0.0.1:${leakyPort}: parks one request in three and never releases it, never notices a closed connection`);
  say(`guarded -> 127.0.0.1:${guardedPort}: pool.use(), evicts connections the peer closed, reclaims leases after 2 s`);
  await load(30, 20);
  await sleep(800); // past the upstreams' idle timeout: the leaked connections are now CLOSE_WAIT

  console.log('\n== 6. what the doctor finds (it reads the kernel\'s socket table and joins it to the pools)');
  const report = await diagnoseSelf({ samples: 2, intervalMs: 500 }); // every open pool: leaky and guarded
  let ok = true;
  for (const [pool, port] of [['leaky', leakyPort], ['guarded', guardedPort]] as const) {
    const lines = findingsFor(report.findings, pool, port);
    say(`${pool}:${lines.length === 0 ? ' no findings' : ''}`);
    for (const line of lines) say(`  ${line}`);
    if (pool === 'leaky' && lines.length === 0) ok = false;
  }
  say(`stats: leaky ${String(leaky)}; guarded ${String(guarded)}`);
  await alerts.check();
  const active = alerts.active();
  say(`active alerts:${active.length === 0 ? ' none' : ''}`);
  for (const a of active) say(`  ${a.severity.toUpperCase()} ${a.code} (${a.subject}): ${a.message}`);

  if (dashboardMs > 0) await showDashboard();
  async function showDashboard(): Promise<void> {
    console.log('\n== 7. the dashboard');
    const dashboard = await startDashboard({ port: dashboardPort, collector, alerts, sampleIntervalMs: 500 });
    say(`open ${dashboard.url} (up for ${Math.round(dashboardMs / 1000)} s; "npm start -- --dashboard-ms <ms>" or LIFEGUARD_DEMO_DASHBOARD_MS changes it, 0 skips it)`);
    say(`Prometheus metrics: ${dashboard.url}metrics`);
    // Keep both workloads going, gently, so the charts move.
    await load(Math.ceil(dashboardMs / 400), 400, dashboardMs);
    await dashboard.close();
  }

  alerts.close();
  const [leakyReport, guardedReport] = await Promise.all([leaky.close({ timeoutMs: 100 }), guarded.close({ timeoutMs: 100 })]);
  say(`leaky: ${leaky.stats().leaks} leak reports, ${leakyReport.outstanding.length} leaked leases taken back at close (${parked.length} parked)`);
  say(`guarded: ${guarded.stats().leaks} leak reports, ${guardedReport.outstanding.length} leases out at close`);
  collector.close();
  await Promise.all([leakyUpstream.close(), guardedUpstream.close()]);
  return ok;
}
