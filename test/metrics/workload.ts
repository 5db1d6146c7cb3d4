import { Pool, type Lease } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

/**
 * A scripted workload on a fake clock, with figures a test can predict exactly:
 * - 2 connections created, the first taking 30 ms;
 * - 4 acquires, waiting 30, 0, 0 and 40 ms (sum 70 ms);
 * - 1 acquire timed out after 100 ms;
 * - 2 leases released, after 200 ms and 340 ms (sum 540 ms);
 * - at the end: 1 connection used (lease `c`), 1 used by `d`, 0 idle, 0 pending; 1 lease destroyed
 *   (reason `error`) if `destroyOne`.
 */
export interface Workload {
  readonly clock: FakeClock;
  readonly pool: Pool<TestResource>;
  readonly factory: TestFactory;
  readonly leases: Lease<TestResource>[];
}

export async function runWorkload(clock: FakeClock, name = 'db'): Promise<Workload> {
  const factory = new TestFactory();
  factory.manual = true;
  const pool = new Pool<TestResource>({ name, factory: factory.basic(), clock, max: 2, acquireTimeoutMs: 1000, leakDetection: 'full', leakWarnAfterMs: 0 });
  const first = pool.acquire();
  await flush();
  await clock.advance(30);
  factory.resolveCreate();
  const a = await first; // t=30: created in 30 ms, waited 30 ms
  factory.manual = false;
  const b = await pool.acquire(); // t=30: created at once, waited 0
  await clock.advance(200);
  a.release(); // t=230: used 200 ms
  const c = await pool.acquire(); // t=230: the idle one, waited 0
  const late = pool.acquire({ timeoutMs: 100 }).catch((error: unknown) => error);
  await clock.advance(100);
  await late; // t=330: timed out after 100 ms
  const waiting = pool.acquire();
  await clock.advance(40);
  b.release(); // t=370: used 340 ms, handed to the waiter, which waited 40 ms
  const d = await waiting;
  await flush();
  return { clock, pool, factory, leases: [c, d] };
}

export { FakeClock, flush };
