import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isolatedTempDir } from '../support/isolated-dir.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..', '..');

/**
 * A consumer project where lifeguard is installed with its dependencies but none of its optional peers
 * (pg, mysql2, ioredis, prom-client, @opentelemetry/api): the real absence, not a simulated one.
 */
describe('a missing optional peer', () => {
  let dir = '';
  before(() => {
    dir = isolatedTempDir('lg-no-peers-');
    const pkg = path.join(dir, 'node_modules', 'lifeguard');
    mkdirSync(path.join(pkg, 'dist'), { recursive: true });
    cpSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
    cpSync(path.join(root, 'dist', 'src'), path.join(pkg, 'dist', 'src'), { recursive: true });
    for (const dep of ['undici', 'uplot']) symlinkSync(path.join(root, 'node_modules', dep), path.join(dir, 'node_modules', dep));
  });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  async function attempt(code: string): Promise<{ code: string; packageName: string; message: string }> {
    const script = `try { ${code}; console.log(JSON.stringify({ code: 'none' })); } catch (e) { console.log(JSON.stringify({ code: e.code, packageName: e.packageName, message: e.message })); }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, timeout: 20_000 });
    return JSON.parse(stdout.trim()) as { code: string; packageName: string; message: string };
  }

  for (const [subpath, packageName] of [['pg', 'pg'], ['mysql2', 'mysql2'], ['ioredis', 'ioredis']] as const) {
    it(`import('lifeguard/${subpath}') fails with LG_DRIVER_MISSING naming ${packageName}`, async () => {
      const result = await attempt(`await import('lifeguard/${subpath}')`);
      assert.equal(result.code, 'LG_DRIVER_MISSING');
      assert.equal(result.packageName, packageName);
      assert.match(result.message, new RegExp(`needs the "${packageName}" package.*npm install ${packageName}`));
    });
  }

  for (const [fn, packageName] of [['registerPrometheus', 'prom-client'], ['registerOpenTelemetry', '@opentelemetry/api']] as const) {
    it(`${fn}() fails with LG_DRIVER_MISSING naming ${packageName}, in one line`, async () => {
      const result = await attempt(`const m = await import('lifeguard/metrics'); m.${fn}()`);
      assert.equal(result.code, 'LG_DRIVER_MISSING');
      assert.equal(result.packageName, packageName);
      assert.ok(!result.message.includes('\n'), `one line: ${result.message}`);
      assert.match(result.message, new RegExp(`${fn}\\(\\) needs the "${packageName}" package`));
    });
  }

  it('lifeguard itself and lifeguard/http import without any peer', async () => {
    assert.equal((await attempt(`await import('lifeguard'); await import('lifeguard/http'); await import('lifeguard/metrics')`)).code, 'none');
  });
});
