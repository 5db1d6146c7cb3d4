import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

const runner = new URL('../../../scripts/run-tests.mjs', import.meta.url).pathname;

describe('scripts/run-tests.mjs', () => {
  it('counts and names skipped suites and tests in its summary (node says "skipped 0" for a skipped describe)', () => {
    const dist = mkdtempSync(path.join(tmpdir(), 'lifeguard-runner-'));
    try {
      mkdirSync(path.join(dist, 'test', 'support'), { recursive: true });
      writeFileSync(path.join(dist, 'test', 'support', 'watchdog.js'), '');
      writeFileSync(path.join(dist, 'test', 'sample.test.js'), [
        "import { describe, it } from 'node:test';",
        "describe('the browser suite', { skip: 'chromium not found' }, () => { it('draws', () => {}); });",
        "it('runs', () => {});",
        "it('a skipped test', { skip: 'no server' }, () => {});",
      ].join('\n'));
      const env: NodeJS.ProcessEnv = { ...process.env, LIFEGUARD_DIST: dist };
      // Run as a top-level test run, not as a child of this one.
      delete env['NODE_TEST_CONTEXT'];
      const run = spawnSync(process.execPath, [runner], { encoding: 'utf8', env, timeout: 60_000 });
      assert.equal(run.status, 0, run.stderr + run.stdout);
      assert.match(run.stdout, /^run-tests: skipped 1 suite and 1 test:$/m);
      assert.match(run.stdout, /^ {2}suite "the browser suite" \(test\/sample\.test\.js\): chromium not found$/m);
      assert.match(run.stdout, /^ {2}test "a skipped test" \(test\/sample\.test\.js\): no server$/m);
    } finally {
      rmSync(dist, { recursive: true, force: true });
    }
  });
});
