/** A temporary folder from which node's module resolution reaches nothing of this checkout. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

/**
 * `mkdtempSync` under the first of the system's temporary folder, /var/tmp and the home folder with no
 * `node_modules` above it: one in a parent (a `/tmp/node_modules` some other tool left) would lend a
 * "fresh" project the packages it must be without.
 */
export function isolatedTempDir(prefix: string): string {
  const clean = (dir: string): boolean => {
    for (let at = path.resolve(dir); ; at = path.dirname(at)) {
      if (existsSync(path.join(at, 'node_modules'))) return false;
      if (path.dirname(at) === at) return true;
    }
  };
  const base = [tmpdir(), '/var/tmp', homedir()].find(clean);
  assert.ok(base !== undefined, `no folder without a node_modules above it among ${tmpdir()}, /var/tmp, ${homedir()}`);
  return mkdtempSync(path.join(base, prefix));
}
