import type net from 'node:net';
import { Pool, AcquireTimeoutError } from '../src/index.js';
import { EchoServer } from './echo-server.js';
import { roundTrip, socketFactory } from './socket-factory.js';

/**
 * `npm start`: Lifeguard's pool in front of real TCP connections to an embedded loopback server. Shows a
 * bounded connection count under load, a leak caught by name, an acquire timeout that says why, and a
 * clean shutdown that leaves no handle behind.
 */
const step = (title: string): void => { console.log(`\n== ${title}`); };

const server = new EchoServer();
const port = await server.listen();
const handlesBefore = process.getActiveResourcesInfo().length;

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
console.log(`   active handles: ${process.getActiveResourcesInfo().length} (before the pool: ${handlesBefore}, including the server)`);
console.log('\nDone: every connection closed, no timer or socket left behind.');
