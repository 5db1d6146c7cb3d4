import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const bin = new URL('../../src/cli/main.js', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string; bin: Record<string, string> };

describe('lifeguard CLI', () => {
  it('prints its version and help', () => {
    assert.equal(execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' }).trim(), pkg.version);
    assert.match(execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' }), /^Usage: lifeguard/);
  });

  it('rejects an unknown command or option with exit code 2', () => {
    const unknown = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8' });
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.equal(spawnSync(process.execPath, [bin, '--nope'], { encoding: 'utf8' }).status, 2);
  });

  it('is the package bin', () => {
    assert.equal(pkg.bin['lifeguard'], './dist/src/cli/main.js');
  });
});
