// Runs every compiled test file with node:test. --expose-gc is for the tests that prove a dropped lease
// is detected after garbage collection; the test runner passes it on to each test process.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

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

// No run may hang, whatever a test does. On node 20 --test-timeout bounds each test file as a whole (the
// slowest takes about 20 s): a file still running after FILE_TIMEOUT_MS is stopped and fails as timed
// out. A file that outlives its own tests is failed by the watchdog (test/support/watchdog.ts), which
// names what holds it open. RUN_DEADLINE_MS bounds everything else. A SIGKILL of this script is the
// one case it cannot cover: nothing can run then.
const FILE_TIMEOUT_MS = 5 * 60_000;
const RUN_DEADLINE_MS = 20 * 60_000;
const watchdog = pathToFileURL(path.join(dist, 'test', 'support', 'watchdog.js')).href;
// Its own process group, so that the deadline and a signal reach the runner and every test process at once.
// node's own reporter (spec on a terminal, tap otherwise, as without --test-reporter) plus one that
// records every skip, for the summary printed at the end.
const skipDir = mkdtempSync(path.join(tmpdir(), 'lifeguard-skips-'));
const skipFile = path.join(skipDir, 'skips.jsonl');
const skipReporter = pathToFileURL(path.join(import.meta.dirname, 'skip-reporter.mjs')).href;
const child = spawn(process.execPath, [
  '--expose-gc', '--enable-source-maps', '--import', watchdog,
  '--test', '--test-concurrency=2', `--test-timeout=${FILE_TIMEOUT_MS}`,
  `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout',
  `--test-reporter=${skipReporter}`, `--test-reporter-destination=${skipFile}`,
  ...files,
], { stdio: 'inherit', detached: true });

/** Prints how many tests and suites were skipped, and which, with why. */
function summarizeSkips() {
  let skips = [];
  try {
    skips = readFileSync(skipFile, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
  } catch {
    // no file: the runner died before reporting
  }
  rmSync(skipDir, { recursive: true, force: true });
  const suites = skips.filter((s) => s.kind === 'suite').length;
  console.log(`run-tests: skipped ${suites} suite${suites === 1 ? '' : 's'} and ${skips.length - suites} test${skips.length - suites === 1 ? '' : 's'}${skips.length === 0 ? '' : ':'}`);
  for (const s of skips) {
    const file = s.file === null ? null : s.file.startsWith('file:') ? new URL(s.file).pathname : s.file;
    // A compiled file by its path in the build; one mapped back to its source by its path in the repository.
    const where = file === null ? '' : ` (${path.relative(file.startsWith(dist + path.sep) ? dist : path.dirname(import.meta.dirname), file)})`;
    console.log(`  ${s.kind} "${s.name}"${where}${s.reason === null ? '' : `: ${s.reason}`}`);
  }
}

function killGroup(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

const deadline = setTimeout(() => {
  console.error(`run-tests: the test run did not end within ${RUN_DEADLINE_MS / 60_000} min; killing it and every test process`);
  killGroup('SIGKILL');
  process.exit(1);
}, RUN_DEADLINE_MS);
deadline.unref();

let interrupted = null;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    interrupted = signal;
    killGroup(signal);
    // Wait for the children to go; those that ignore the signal are killed.
    setTimeout(() => { killGroup('SIGKILL'); }, 10_000).unref();
  });
}

child.on('exit', (code, signal) => {
  clearTimeout(deadline);
  // Test processes the runner left behind (it should leave none) must not outlive the run.
  killGroup('SIGKILL');
  if (interrupted !== null) process.exit(128 + constants.signals[interrupted]);
  summarizeSkips();
  if (signal !== null) console.error(`run-tests: the test runner was killed by ${signal}`);
  process.exit(code ?? 1);
});
