// Runs every compiled test file with node:test. --expose-gc is for the tests that prove a dropped lease
// is detected after garbage collection; the test runner passes it on to each test process.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

// LIFEGUARD_DIST lets parallel work build into its own folder (dist-<name>) without clobbering dist/.
const dist = path.resolve(import.meta.dirname, '..', process.env.LIFEGUARD_DIST ?? 'dist');
const root = path.join(dist, 'test');
function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return name === 'support' ? [] : find(full);
    return name.endsWith('.test.js') ? [full] : [];
  });
}
const only = process.argv.slice(2);
const files = existsSync(root) ? find(root).filter((f) => only.length === 0 || only.some((o) => f.includes(o))).sort() : [];
if (files.length === 0) {
  console.error(`no test files found under ${root}; run "npm run build" first`);
  process.exit(1);
}

// A hung test fails on its own after TEST_TIMEOUT_MS, naming itself; a test process that lingers after
// its tests is failed by the watchdog; RUN_DEADLINE_MS bounds everything else, so CI never waits on a hang.
const TEST_TIMEOUT_MS = 180_000;
const RUN_DEADLINE_MS = 20 * 60_000;
const watchdog = path.join(dist, 'test', 'support', 'watchdog.js');
const child = spawn(process.execPath, [
  '--expose-gc', '--enable-source-maps', '--import', watchdog,
  '--test', '--test-concurrency=2', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files,
], { stdio: 'inherit', detached: true });
const deadline = setTimeout(() => {
  console.error(`run-tests: the test run did not end within ${RUN_DEADLINE_MS / 60_000} min; killing it and every test process`);
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  process.exit(1);
}, RUN_DEADLINE_MS);
deadline.unref();
// The runner and its test processes are one process group: an interrupt of this script ends them all.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    try { process.kill(-child.pid, signal); } catch { /* already gone */ }
    process.exit(1);
  });
}
child.on('exit', (code, signal) => {
  clearTimeout(deadline);
  if (signal !== null) console.error(`run-tests: the test runner was killed by ${signal}`);
  process.exit(code ?? 1);
});
