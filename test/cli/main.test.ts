import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const bin = new URL('../../src/cli/main.js', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string; bin: Record<string, string> };

describe('lifeguard CLI', () => {
  it('prints its version and help', () => {
    assert.equal(execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' }).trim(), pkg.version);
    const help = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    assert.match(help, /^Usage: lifeguard/);
    // Every form of the doctor is named at the top level (--all and --serve were only in "doctor --help").
    assert.match(help, /lifeguard doctor --all/);
    assert.match(help, /lifeguard doctor --pid <pid> --serve <host:port>/);
  });

  it('rejects an unknown command or option with exit code 2', () => {
    const unknown = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8' });
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.equal(spawnSync(process.execPath, [bin, '--nope'], { encoding: 'utf8' }).status, 2);
  });

  it('says "unknown command" for a misspelt command, whatever options follow it', () => {
    const run = spawnSync(process.execPath, [bin, 'doktor', '--pid', '1'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /^lifeguard: unknown command "doktor" \(commands: doctor, dashboard\)/);
    assert.doesNotMatch(run.stderr, /Unknown option/);
  });

  it('with no arguments prints the usage on stderr and exits 2', () => {
    const run = spawnSync(process.execPath, [bin], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^lifeguard: no command given/);
    assert.match(run.stderr, /Usage: lifeguard/);
  });

  it('lists every command in its usage, dashboard included', () => {
    const help = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    assert.match(help, /^ {2}doctor /m);
    assert.match(help, /^ {2}dashboard /m);
    assert.match(help, /^ {7}lifeguard dashboard --pid <pid>/m);
  });

  it('is the package bin', () => {
    assert.equal(pkg.bin['lifeguard'], './dist/src/cli/main.js');
  });
});
