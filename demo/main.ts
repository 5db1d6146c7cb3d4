import type net from 'node:net';
import { Pool, AcquireTimeoutError } from '../src/index.js';
import { EchoServer } from './echo-server.js';
import { roundTrip, socketFactory } from './socket-factory.js';
import { sideBySide } from './side-by-side.js';
import { serverSide } from './server-side.js';

/**
 * `npm start`: Lifeguard's pool in front of real TCP connections to an embedded loopback server. Shows a
 * bounded connection count under load, a leak caught by name, an acquire timeout that says why, and a
 * clean shutdown that leaves no handle behind.
 */
const step = (title: string): void => { console.log(`\n== ${title}`); };

console.log('Lifeguard demo: a pool of real TCP connections to an embedded loopback server');
const handlesBefore = handleTypes(); // after the first write: stdout's pipe exists from here on
const server = new EchoServer();
const port = await server.listen();
/** Counts of active handles by type (timers, sockets, pipes...). */
function handleTypes(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

const pool = new Pool<net.Socket>({
  name: 'echo',
  factory: socketFactory(port),
  max: 5,
  acquireTimeoutMs: 1000,
  // Full capture for the demo; production keeps the cheap default ('sampled', full under pressure).
  leakDetection: 'full',
  leakWarnAfterMs: 500,
});
pool.on('leak', (report) => { console.log(`   leak event: ${report.message}`); });

step('1. 200 concurrent requests through a pool of max=5');
const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => pool.use((socket) => roundTrip(socket, `request ${i}`))));
console.log(`   ${replies.length} replies; the server saw at most ${server.peak} connections at once`);
console.log(`   pool: ${String(pool)}; created ${pool.stats().created} connections for ${pool.stats().acquired} acquires`);

step('2. a handler that forgets to release on its error path');
async function leakyHandler(i: number): Promise<void> {
  const lease = await pool.acquire({ label: `leaky request ${i}` });
  await roundTrip(lease.resource, 'hello');
  if (i >= 0) return; // the bug: an early return that skips lease.release()
  lease.release();
}
for (let i = 0; i < 5; i++) await leakyHandler(i);
await new Promise((resolve) => setTimeout(resolve, 1200)); // past leakWarnAfterMs: the housekeeper reports

step('3. the next acquire times out, and says why');
try {
  await pool.acquire();
} catch (error) {
  if (!(error instanceof AcquireTimeoutError)) throw error;
  console.log(`   ${error.code}: ${error.message.split('\n').join('\n   ')}`);
}

step('4. close(): waits briefly, then takes the leaked connections back and reports them');
const report = await pool.close({ timeoutMs: 200 });
for (const lease of report.outstanding) console.log(`   still out at close: lease #${lease.id} "${lease.label ?? ''}" acquired at ${lease.site ?? '?'}`);
await new Promise((resolve) => setTimeout(resolve, 50));
console.log(`   server connections now: ${server.connections}`);
await server.close();

// Parts 5 to 7: the leaky and guarded workloads, the doctor, alerts and the dashboard (bounded: 20 s by
// default; `npm start -- --dashboard-ms 5000` or LIFEGUARD_DEMO_DASHBOARD_MS=5000 changes it, 0 skips it).
const flag = process.argv.indexOf('--dashboard-ms');
const dashboardMs = Number(flag >= 0 ? process.argv[flag + 1] : process.env['LIFEGUARD_DEMO_DASHBOARD_MS'] ?? 20_000);
if (!Number.isFinite(dashboardMs) || dashboardMs < 0) throw new Error(`--dashboard-ms / LIFEGUARD_DEMO_DASHBOARD_MS: expected a number of milliseconds >= 0, got ${String(dashboardMs)}`);
const sideBySideOk = await sideBySide(dashboardMs, Number(process.env['LIFEGUARD_DEMO_PORT'] ?? 0));
const serverSideOk = await serverSide();
await new Promise((resolve) => setTimeout(resolve, 20)); // let the servers' own handles finish closing
const left = [...handleTypes()].filter(([type, n]) => n > (handlesBefore.get(type) ?? 0));
console.log(`   handles the pool left behind: ${left.length === 0 ? 'none' : left.map(([t, n]) => `${t} x${n}`).join(', ')}`);
if (left.length === 0 && server.connections === 0 && sideBySideOk && serverSideOk) console.log('\nDone: every connection closed, no timer or socket left behind.');
else process.exitCode = 1;
