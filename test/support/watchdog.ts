// Loaded into every test process (scripts/run-tests.mjs passes it with --import). A test process that
// stays alive after its last test is holding a handle some test failed to release, typically because an
// assertion threw before the test's own cleanup ran. Left alone, node:test waits for that process
// forever and the whole run hangs; this turns it into a failure that names what is still open.
import { after } from 'node:test';

/** How long a test process may take to exit once its tests have ended. */
const GRACE_MS = 30_000;

after(() => {
  const timer = setTimeout(() => {
    process.stderr.write(`watchdog: this test process was still running ${GRACE_MS / 1000} s after its last test ended, held by: ${process.getActiveResourcesInfo().join(', ')}; a test left a handle open\n`);
    process.exit(1);
  }, GRACE_MS);
  // Unref'd: a process with nothing else open exits at once, and never waits on the watchdog.
  timer.unref();
});

