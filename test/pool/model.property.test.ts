import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Pool, type Lease } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

/**
 * Random sequences of acquire, release, destroy, timeout, abort, failing creates and close, run against
 * the pool and checked after every step against the invariants the pool promises.
 */
type Op =
  | { kind: 'acquire'; timeoutMs: number | undefined; abortable: boolean }
  | { kind: 'release'; pick: number }
  | { kind: 'destroy'; pick: number }
  | { kind: 'abort'; pick: number }
  | { kind: 'failCreates'; count: number }
  | { kind: 'invalidateIdle' }
  | { kind: 'revoke'; pick: number }
  | { kind: 'advance'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('acquire' as const), timeoutMs: fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }), abortable: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('failCreates' as const), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('invalidateIdle' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('revoke' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 2500 }) }) },
);

interface Waiting {
  readonly seq: number;
  readonly timeoutMs: number | undefined;
  readonly controller: AbortController | undefined;
  settled: boolean;
}

async function run(ops: Op[], max: number, min: number, leakDetection: 'off' | 'sampled' | 'full'): Promise<void> {
  const clock = new FakeClock();
  const factory = new TestFactory();
  const pool = new Pool<TestResource>({
    factory: factory.basic(), clock, max, min, acquireTimeoutMs: 2000, idleTimeoutMs: 4000, maxLifetimeMs: 9000,
    maxLifetimeJitterMs: 1000, createRetryInitialDelayMs: 10, createRetryMaxDelayMs: 200, housekeepingIntervalMs: 250,
    leakDetection, leakWarnAfterMs: 0,
  });
  const held: Lease<TestResource>[] = [];
  const waiting: Waiting[] = [];
  let seq = 0;
  const problems: string[] = [];

  const check = (where: string): void => {
    const s = pool.stats();
    if (s.inUse + s.idle + s.creating > max) problems.push(`${where}: inUse+idle+creating=${s.inUse + s.idle + s.creating} > max=${max}`);
    const lent = held.filter((l) => l.active).map((l) => l.resource);
    if (new Set(lent).size !== lent.length) problems.push(`${where}: a resource is lent twice`);
    if (lent.some((r) => r.destroyed)) problems.push(`${where}: a destroyed resource is lent`);
    if (s.pending !== waiting.filter((w) => !w.settled).length) problems.push(`${where}: pending=${s.pending} but ${waiting.filter((w) => !w.settled).length} waiting`);
  };

  for (const [i, o] of ops.entries()) {
    switch (o.kind) {
      case 'acquire': {
        const controller = o.abortable ? new AbortController() : undefined;
        const w: Waiting = { seq: ++seq, timeoutMs: o.timeoutMs, controller, settled: false };
        waiting.push(w);
        const options = { ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }), ...(controller === undefined ? {} : { signal: controller.signal }) };
        pool.acquire(options).then((lease) => {
          // First-in first-out among waiters with the pool's default timeout: nobody older may still wait.
          const older = waiting.filter((x) => x.seq < w.seq && !x.settled);
          if (older.length > 0) problems.push(`step ${i}: waiter ${w.seq} served while ${older.map((x) => x.seq).join(',')} still wait`);
          w.settled = true;
          held.push(lease);
        }, () => {
          w.settled = true;
        });
        break;
      }
      case 'release':
      case 'destroy': {
        const active = held.filter((l) => l.active);
        const lease = active[o.pick % Math.max(1, active.length)];
        if (lease !== undefined) {
          if (o.kind === 'release') lease.release();
          else lease.destroy(new Error('broken'));
        }
        break;
      }
      case 'abort': {
        const live = waiting.filter((w) => !w.settled && w.controller !== undefined);
        live[o.pick % Math.max(1, live.length)]?.controller?.abort();
        break;
      }
      case 'failCreates':
        factory.failCreates += o.count;
        break;
      case 'invalidateIdle':
        for (const r of factory.live) r.context.invalidate(new Error('peer closed'));
        break;
      case 'revoke': {
        // The factory takes one live resource back, lent or not (a lost budget permit).
        const live = factory.live;
        live[o.pick % Math.max(1, live.length)]?.context.revoke(new Error('permit lost'));
        break;
      }
      case 'advance':
        await clock.advance(o.ms);
        break;
    }
    await flush(2);
    check(`step ${i} (${o.kind})`);
    if (problems.length > 0) break;
  }

  // Close: return what is out, then every created resource must be destroyed exactly once (the test
  // factory throws on a second destroy) and no timer may remain.
  for (const lease of held) if (lease.active) lease.release();
  const closing = pool.close({ timeoutMs: 1000 });
  await clock.advance(6000);
  await closing;
  await flush();
  if (factory.live.length !== 0) problems.push(`after close ${factory.live.length} resources not destroyed`);
  if (clock.timers.total !== 0) problems.push(`after close ${clock.timers.total} timers remain`);
  if (waiting.some((w) => !w.settled)) problems.push('after close a waiter never settled');
  assert.deepEqual(problems, []);
}

describe('pool model (property-based)', () => {
  for (const leakDetection of ['off', 'sampled', 'full'] as const) {
    it(`keeps its invariants under random operations (leakDetection: ${leakDetection})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 2 }), async (ops, max, minWanted) => {
          await run(ops, max, Math.min(minWanted, max), leakDetection);
        }),
        { numRuns: leakDetection === 'sampled' ? 150 : 60 },
      );
    });
  }
});
