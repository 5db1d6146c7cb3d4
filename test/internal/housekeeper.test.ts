import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Housekeeper } from '../../src/internal/housekeeper.js';
import { FakeClock } from '../support/fake-clock.js';

describe('Housekeeper', () => {
  it('runs each task at its own period on one timer, and survives a task that throws', async () => {
    const clock = new FakeClock();
    const keeper = Housekeeper.for(clock);
    assert.equal(Housekeeper.for(clock), keeper, 'one per clock');
    const runs: string[] = [];
    const fast = { periodMs: 100, run: () => runs.push('fast') };
    const slow = { periodMs: 250, run: () => runs.push('slow') };
    const broken = { periodMs: 100, run: () => { throw new Error('task bug'); } };
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => { warnings.push(w); };
    process.on('warning', onWarning);
    keeper.register(fast);
    keeper.register(slow);
    keeper.register(broken);
    assert.equal(clock.timers.total, 1);
    await clock.advance(500);
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    assert.equal(runs.filter((r) => r === 'fast').length, 5);
    assert.equal(runs.filter((r) => r === 'slow').length, 2);
    assert.ok(warnings.some((w) => w.message === 'task bug'));
    keeper.unregister(fast);
    keeper.unregister(slow);
    keeper.unregister(broken);
    assert.equal(keeper.active, false);
    assert.equal(clock.timers.total, 0);
  });
});
