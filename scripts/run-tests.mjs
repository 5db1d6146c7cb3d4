// Runs every compiled test file with node:test. --expose-gc is for the tests that prove a dropped lease
// is detected after garbage collection; the test runner passes it on to each test process.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

// LIFEGUARD_DIST lets parallel work build into its own folder (dist-<name>) without clobbering dist/.
const root = path.resolve(import.meta.dirname, '..', process.env.LIFEGUARD_DIST ?? 'dist', 'test');
function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return name === 'support' ? [] : find(full);
    return name.endsWith('.test.js') ? [full] : [];
  });
}
const only = process.argv.slice(2);
const files = find(root).filter((f) => only.length === 0 || only.some((o) => f.includes(o))).sort();
if (files.length === 0) {
  console.error(`no test files found under ${root}; run "npm run build" first`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--expose-gc', '--enable-source-maps', '--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
