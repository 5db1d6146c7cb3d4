/**
 * A helper command (`ss`, `readlink`) run beside the doctor on another core: started with its output in an
 * unlinked temporary file that is read once it has exited (`startChild`), or watched to its end
 * (`watchChild`) by a caller that reads its output from a pipe.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** How a helper ended: its exit code (null when killed or never started), the start of its stderr, or why it never ran. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stderr: string;
  /** Set when the command could not be started: `not found`, or the spawn error's message. */
  readonly failed: string | null;
}

/** A helper that was started. */
export interface ChildRun {
  /** Resolves once it has exited (never rejects). */
  readonly exit: Promise<ChildExit>;
  /** The temporary file holding its standard output, read by position (`pread`): valid until `close()`. */
  readonly fd: number;
  /** Closes the output file; idempotent. */
  close(): void;
}

let runs = 0;
// A helper that hangs (a stuck procfs read, a hung NFS cwd) must not hang the doctor.
const CHILD_TIMEOUT_MS = 30_000;
const STDERR_KEPT = 4096;

/**
 * Starts `command` with its output in an unlinked temporary file: a pipe holds 64 KB, and the doctor
 * reads synchronously meanwhile, so the helper would wait on a full pipe instead of running beside it.
 * Returns why not when it cannot be started.
 */
export function startChild(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildRun | string {
  let fd: number;
  try {
    const file = path.join(tmpdir(), `lifeguard-${path.basename(command)}-${process.pid}-${++runs}-${Date.now()}`);
    fd = openSync(file, 'wx+', 0o600);
    unlinkSync(file);
  } catch (error) {
    return `no temporary file for its output (${(error as Error).message})`;
  }
  let child: ChildProcess;
  try {
    // Loaded here only: node:child_process and the streams it loads are not needed by the /proc reader.
    child = process.getBuiltinModule('node:child_process').spawn(command, [...args], { stdio: ['ignore', fd, 'pipe'], ...(env === undefined ? {} : { env }) });
  } catch (error) {
    closeSync(fd);
    return `could not be started (${(error as Error).message})`;
  }
  const exit = watchChild(child);
  let closed = false;
  return {
    exit,
    fd,
    close() {
      if (!closed) closeSync(fd);
      closed = true;
    },
  };
}

/**
 * How a started child ends, bounded by CHILD_TIMEOUT_MS (then killed): resolves once its handles are
 * closed, never rejects. Its stderr, if piped, is kept up to STDERR_KEPT characters.
 */
export function watchChild(child: ChildProcess): Promise<ChildExit> {
  return new Promise<ChildExit>((resolve) => {
    const limit = setTimeout(() => { child.kill('SIGKILL'); }, CHILD_TIMEOUT_MS);
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => { if (stderr.length < STDERR_KEPT) stderr += chunk; });
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(limit);
      afterHandlesClose(() => { resolve({ code: null, signal: null, stderr, failed: error.code === 'ENOENT' ? 'not found' : error.message }); });
    });
    child.once('close', (code: number | null, signal: string | null) => {
      clearTimeout(limit);
      afterHandlesClose(() => { resolve({ code, signal, stderr, failed: null }); });
    });
  });
}

/**
 * Runs `fn` once the handles a child closed on exit are closed: 'close' is emitted as their closing
 * starts, and they leave the event loop's active handles only in its close phase, after this turn's
 * setImmediate callbacks. A caller that returns at 'close' (the CLI's --watch) would leave a ProcessWrap
 * alive for a turn.
 */
function afterHandlesClose(fn: () => void): void {
  setImmediate(() => { setImmediate(fn); });
}

/** Why a helper that did not exit 0 failed, in one line: `not found`, `exited with 2: <its first stderr line>`. */
export function exitWhy(exit: ChildExit): string {
  if (exit.failed !== null) return exit.failed;
  const first = exit.stderr.trim().split('\n')[0] ?? '';
  return `exited with ${exit.code ?? exit.signal ?? '?'}${first === '' ? '' : `: ${first}`}`;
}
