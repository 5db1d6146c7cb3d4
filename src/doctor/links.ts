/**
 * A process's descriptor links (`/proc/PID/fd/N` -> `socket:[inode]`) read by coreutils' `readlink` in a
 * child process, on another core while the doctor reads the TCP tables: for a process of 20,000 sockets
 * the links are the largest cost of a sample, and the one that grows with the process.
 */
import { readSync } from 'node:fs';
import { InvalidOptionError } from '../internal/errors.js';
import { describe } from '../internal/options.js';
import { exitWhy, startChild, type ChildExit, type ChildRun } from './child.js';
import type { FdReader, TcpSocket } from './proc.js';

/** A running `readlink`. */
export interface LinksRun {
  /** The socket inodes (inode -> -1, as `scanFds` gives them) once `readlink` has exited and its output is read; null before, and when it failed. */
  readonly inodes: Map<number, number> | null;
  /** Waits for `readlink`: the number of open descriptors and their socket inodes, or why they could not be read so (the caller then reads them itself). */
  read(): Promise<{ open: number; inodes: Map<number, number> } | string>;
}

// `cd` first: each readlink then resolves one path component, not /proc, the pid and fd again (and names
// stay short, so more fit in the argument list). The shell's glob lists the folder: no listing here.
// `-z`: a link may hold any byte but NUL. `-v`: a failure says why (silent by default).
const SCRIPT = 'cd "$1" && exec readlink -vz -- *';
// A descriptor closed between the glob and its readlink: gone, not a failure.
const GONE = ': No such file or directory';
const CHUNK = 64 * 1024;

/** Starts `readlink` on every entry of `dir` (`/proc/PID/fd`); returns why not when it cannot be started. */
export function startLinks(dir: string): LinksRun | string {
  // LC_ALL=C: the failure messages are matched in English.
  const run = startChild('/bin/sh', ['-c', SCRIPT, 'sh', dir], { ...process.env, LC_ALL: 'C' });
  if (typeof run === 'string') return run;
  let inodes: Map<number, number> | null = null;
  // Read as soon as it exits (a promise reaction, so at the table reader's next turn), so that the rows
  // read after that are filtered by inode instead of decoded.
  const outcome = run.exit.then((exit) => {
    try {
      const why = failure(exit);
      if (why !== null) return `readlink: ${why}`;
      const read = parseLinks(run);
      inodes = read.inodes;
      return read;
    } catch (error) {
      return `readlink: its output could not be read (${(error as Error).message})`;
    } finally {
      run.close();
    }
  });
  return {
    get inodes() { return inodes; },
    read: () => outcome,
  };
}

/** Null when `readlink` read every link that still existed; otherwise why not. */
export function failure(exit: ChildExit): string | null {
  const { code, stderr } = exit;
  if (exit.failed === null && code === 0) return null;
  // Exit 1 is any failed link: only descriptors closed meanwhile are fine (an EACCES is the caller's error to report).
  if (exit.failed !== null || code !== 1) return exitWhy(exit);
  const lines = stderr.split('\n').filter((line) => line !== '');
  const bad = lines.find((line) => !line.endsWith(GONE));
  // The last line may be cut where stderr stopped being kept; one that is not complete is not judged.
  if (bad === undefined || (bad === lines.at(-1) && !stderr.endsWith('\n'))) return lines.length === 0 ? 'exited with 1' : null;
  return `exited with 1: ${bad}`;
}

/** The NUL-separated links `readlink -z` wrote: one per open descriptor, `socket:[N]` for a socket. */
export function parseLinks(run: Pick<ChildRun, 'fd'>): { open: number; inodes: Map<number, number> } {
  const buf = Buffer.allocUnsafe(CHUNK);
  const inodes = new Map<number, number>();
  let open = 0;
  let filled = 0;
  let position = 0;
  for (;;) {
    const n = readSync(run.fd, buf, filled, buf.length - filled, position);
    position += n;
    const total = filled + n;
    let at = 0;
    for (;;) {
      const end = buf.indexOf(0, at);
      if (end < 0 || end >= total) break;
      open++;
      const inode = socketInode(buf, at, end);
      if (inode >= 0) inodes.set(inode, -1);
      at = end + 1;
    }
    if (n === 0) {
      if (at < total) throw new Error('the last link is not NUL-terminated');
      return { open, inodes };
    }
    // A link is at most PATH_MAX (4,096 bytes): a full chunk always ends one.
    if (at === 0 && total === buf.length) throw new Error(`a link longer than ${buf.length} bytes`);
    buf.copyWithin(0, at, total);
    filled = total - at;
  }
}

const SOCKET = Buffer.from('socket:[', 'latin1');

/** "socket:[12345]" -> 12345; -1 for any other link. */
function socketInode(buf: Buffer, start: number, end: number): number {
  if (end - start < 10 || buf[end - 1] !== 0x5d /* ] */) return -1;
  for (let i = 0; i < SOCKET.length; i++) if (buf[start + i] !== SOCKET[i]) return -1;
  let value = 0;
  for (let i = start + 8; i < end - 1; i++) {
    const c = (buf[i] ?? 0) - 0x30;
    if (c < 0 || c > 9) return -1;
    value = value * 10 + c;
  }
  return value;
}

/** Rejects an `fdReader` option that is not one of {@link FdReader}. */
export function checkFdReader(value: unknown): asserts value is FdReader | undefined {
  if (value !== undefined && value !== 'inline' && value !== 'readlink') {
    throw new InvalidOptionError('fdReader', `invalid option "fdReader": expected "inline" or "readlink", got ${describe(value)}`);
  }
}

/**
 * The rows read while `readlink` runs: all of them until its answer is in, which then drops those of other
 * processes at once (in a namespace of 100,000 sockets they would otherwise stay until the end of the sample).
 */
export function besideRows(links: Pick<LinksRun, 'inodes'>): { rows: TcpSocket[]; onRow: (row: TcpSocket) => void } {
  const rows: TcpSocket[] = [];
  let pruned = false;
  return {
    rows,
    onRow(row) {
      if (!pruned && links.inodes !== null) {
        pruned = true;
        const inodes = links.inodes;
        let kept = 0;
        for (const held of rows) if (inodes.has(held.inode)) rows[kept++] = held;
        rows.length = kept;
      }
      rows.push(row);
    },
  };
}
