import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { keepTickObjectShape, tickShapeHolder } from '../../src/internal/tick-shape.js';
import { LifeguardDispatcher } from '../../src/http/dispatcher.js';
import { Pool } from '../../src/pool/pool.js';
import { TestFactory } from '../support/factory.js';

const moduleUrl = new URL('../../src/internal/tick-shape.js', import.meta.url).href;

interface Outcome {
  /** Whether the holder and node's tick objects share a map, before and after the collections (null without a holder). */
  readonly sameMapBefore: boolean | null;
  readonly sameMapAfter: boolean | null;
  /** The state of nextTick's feedback for each property of its tick object literal, as V8 prints it. */
  readonly literalFeedback: string[];
}

/**
 * In a child process (it needs V8's natives syntax and exposed gc): nextTicks, then an idle spell of
 * twelve full collections with no tick object alive (what the memory reducer does to an idle process),
 * then nextTicks again; reports whether nextTick's tick object literal kept its monomorphic feedback.
 */
function idleThroughCollections(hold: boolean): Outcome {
  const script = `
    import { executionAsyncResource } from 'node:async_hooks';
    import { setTimeout as sleep } from 'node:timers/promises';
    const { keepTickObjectShape, tickShapeHolder } = await import(${JSON.stringify(moduleUrl)});
    if (${String(hold)}) keepTickObjectShape();
    const holder = tickShapeHolder();
    const tickObject = () => new Promise((resolve) => { process.nextTick(() => { resolve(executionAsyncResource()); }); });
    const sameMap = async () => (holder === null ? null : %HaveSameMap(holder, await tickObject()));
    for (let i = 0; i < 2000; i++) process.nextTick(() => {});
    await sleep(5);
    const sameMapBefore = await sameMap();
    for (let i = 0; i < 12; i++) { globalThis.gc(); await sleep(5); }
    for (let i = 0; i < 2000; i++) process.nextTick(() => {});
    await sleep(5);
    const sameMapAfter = await sameMap();
    console.log('OUTCOME ' + JSON.stringify({ sameMapBefore, sameMapAfter }));
    %DebugPrint(process.nextTick);
  `;
  // Into a file, not a pipe: V8 prints through C's stdio, and on a pipe its print came out cut short in
  // most children while the whole suite ran (never on a file).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeguard-tick-shape-'));
  const file = path.join(dir, 'stdout');
  const fd = openSync(file, 'w');
  let stdout: string;
  try {
    const child = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', script], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, `child failed: ${child.stderr}`);
    stdout = readFileSync(file, 'utf8');
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  const line = stdout.split('\n').find((l) => l.startsWith('OUTCOME '));
  assert.ok(line !== undefined, `no outcome in: ${stdout.slice(0, 2000)}`);
  const { sameMapBefore, sameMapAfter } = JSON.parse(line.slice('OUTCOME '.length)) as { sameMapBefore: boolean | null; sameMapAfter: boolean | null };
  const literalFeedback = [...stdout.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1] ?? '');
  return { sameMapBefore, sameMapAfter, literalFeedback };
}

describe('keepTickObjectShape', () => {
  it('holds an object of the very map node gives its tick objects, so an idle process keeps nextTick monomorphic', (t) => {
    const outcome = idleThroughCollections(true);
    assert.equal(outcome.sameMapBefore, true, 'the holder shares node\'s tick object map');
    assert.equal(outcome.sameMapAfter, true, 'and still does after the collections');
    if (outcome.literalFeedback.length === 0) {
      t.skip('this node build prints no feedback (%DebugPrint): the map checks above stand alone');
      return;
    }
    assert.deepEqual(outcome.literalFeedback, ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']);
  });

  it('regression: without the holder, an idle spell of collections turns nextTick megamorphic for good (the agent\'s slow processes)', (t) => {
    const outcome = idleThroughCollections(false);
    if (outcome.literalFeedback.length === 0) {
      t.skip('this node build prints no feedback (%DebugPrint)');
      return;
    }
    if (!outcome.literalFeedback.includes('MEGAMORPHIC')) {
      t.skip(`this node kept the tick object maps through the collections (${outcome.literalFeedback.join(' ')}): no cliff to show`);
      return;
    }
    // Each definition after the first starts from a map that was collected and built anew.
    assert.deepEqual(outcome.literalFeedback.slice(1), ['MEGAMORPHIC', 'MEGAMORPHIC', 'MEGAMORPHIC']);
  });

  it('is built by the first HTTP pool of the process, once, and not by a generic pool', async () => {
    const pool = new Pool({ factory: new TestFactory().basic(), max: 1 });
    assert.equal(tickShapeHolder(), null, 'a generic pool leaves nextTick alone');
    await pool.close();
    const dispatcher = new LifeguardDispatcher();
    const holder = tickShapeHolder();
    assert.notEqual(holder, null);
    keepTickObjectShape();
    assert.equal(tickShapeHolder(), holder, 'built once');
    assert.deepEqual(Object.getOwnPropertySymbols(holder).map((s) => s.description), ['async_id_symbol', 'trigger_async_id_symbol']);
    await dispatcher.close();
  });

  it('leaves async_hooks listeners no resource without its destroy', () => {
    const script = `
      import { createHook } from 'node:async_hooks';
      const { keepTickObjectShape, tickShapeHolder } = await import(${JSON.stringify(moduleUrl)});
      const live = new Map();
      createHook({ init(id, type) { live.set(id, type); }, destroy(id) { live.delete(id); } }).enable();
      keepTickObjectShape();
      setImmediate(() => {
        console.log(JSON.stringify({ held: tickShapeHolder() !== null, live: [...live.values()].filter((t) => t.startsWith('LIFEGUARD')) }));
      });
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), { held: true, live: [] });
  });
});
