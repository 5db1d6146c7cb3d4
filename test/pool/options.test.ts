import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidOptionError, Pool, type PoolOptions } from '../../src/index.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function rejects(options: unknown, option: string, pattern: RegExp): void {
  assert.throws(() => new Pool(options as PoolOptions<TestResource>), (error: unknown) => {
    assert.ok(error instanceof InvalidOptionError, `expected InvalidOptionError, got ${String(error)}`);
    assert.equal(error.code, 'LG_INVALID_OPTION');
    assert.equal(error.option, option);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('Pool options', () => {
  const factory = new TestFactory().basic();

  it('rejects an unknown option, naming it and listing the known ones', () => {
    rejects({ factory, maxSize: 5 }, 'maxSize', /unknown option "maxSize" for Pool; known options: .*max,/);
  });

  it('rejects a wrong type, naming the option, what was expected and what was given', () => {
    rejects({ factory, max: '10' }, 'max', /invalid option "max": expected an integer >= 1, got the string "10"/);
    rejects({ factory, idleTimeoutMs: -1 }, 'idleTimeoutMs', /expected a number >= 0, got number -1/);
    rejects({ factory, max: 2.5 }, 'max', /expected an integer >= 1, got number 2.5/);
    rejects({ factory, acquireTimeoutMs: Number.NaN }, 'acquireTimeoutMs', /got number NaN/);
    rejects({ factory, idleOrder: 'random' }, 'idleOrder', /expected one of "lifo", "fifo", got the string "random"/);
    rejects({ factory, leakDetection: true }, 'leakDetection', /expected one of "off", "sampled", "full", got boolean true/);
    rejects({ factory, leakSampleRate: 2 }, 'leakSampleRate', /between 0 and 1/);
  });

  it('rejects impossible combinations', () => {
    rejects({ factory, min: 5, max: 2 }, 'min', /must be <= max \(2\), got number 5/);
    rejects({ factory, max: 2, maxConcurrentCreates: 3 }, 'maxConcurrentCreates', /must be <= max \(2\)/);
    rejects({ factory, createRetryInitialDelayMs: 500, createRetryMaxDelayMs: 100 }, 'createRetryMaxDelayMs', /must be >= createRetryInitialDelayMs/);
    rejects({ factory, keepAliveIntervalMs: 1000 }, 'keepAliveIntervalMs', /factory.validate, which is not given/);
    rejects({ factory, maxLifetimeMs: 1000, maxLifetimeJitterMs: 1000 }, 'maxLifetimeJitterMs', /must be < maxLifetimeMs/);
    rejects({ factory, leakDetection: 'off', reclaimAfterMs: 1000 }, 'reclaimAfterMs', /leakDetection is "off"/);
  });

  it('validates the factory', () => {
    rejects({}, 'factory', /expected an object with create\(\) and destroy\(\), got undefined/);
    rejects({ factory: { create: factory.create } }, 'factory.destroy', /expected a function, got undefined/);
    rejects({ factory: { ...factory, validate: 1 } }, 'factory.validate', /a function or undefined, got number 1/);
    rejects({ factory: { ...factory, ping: () => true } }, 'ping', /unknown option "ping" for factory/);
  });

  it('fills defaults and derives the housekeeping period from the smallest timing', async () => {
    const pool = new Pool({ factory });
    const o = pool.options;
    assert.equal(o.max, 10);
    assert.equal(o.min, 0);
    assert.equal(o.acquireTimeoutMs, 30_000);
    assert.equal(o.idleOrder, 'lifo');
    assert.equal(o.leakDetection, 'sampled');
    assert.equal(o.housekeepingIntervalMs, 1000);
    assert.equal(o.maxLifetimeJitterMs, 45_000);
    await pool.close();
    const fast = new Pool({ factory, idleTimeoutMs: 200 });
    assert.equal(fast.options.housekeepingIntervalMs, 50);
    await fast.close();
  });

  it('accepts Infinity where a limit may be absent', async () => {
    const pool = new Pool({ factory, acquireTimeoutMs: Infinity, maxWaiting: Infinity, createTimeoutMs: Infinity });
    assert.equal(pool.options.acquireTimeoutMs, Infinity);
    await pool.close();
    rejects({ factory, max: Infinity }, 'max', /got number Infinity/);
  });
});
