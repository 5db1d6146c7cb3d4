/**
 * Readers of the kernel's own tables under `/proc` (Linux only): TCP sockets, a process's file
 * descriptors and limits, its thread count. No sampling and no judgement here: the doctor and the
 * metrics layer build on these.
 *
 * ```ts
 * import { readProcessSockets, readFdUsage, readThreads } from 'lifeguard/doctor';
 * const sockets = await readProcessSockets(process.pid);        // this process's TCP sockets only
 * const closeWait = sockets.filter((s) => s.state === 'CLOSE_WAIT');
 * const { open, limit } = await readFdUsage(process.pid);       // descriptors against the soft limit
 * ```
 */
import { readdir as readdirCallback, readFileSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, rejectUnknownKeys } from '../pool/options.js';
import { DoctorError, DoctorErrorCodes } from './errors.js';
import { canonicalV6, RowError, scanFds, scanTable } from './scan.js';
import { besideRows, checkFdReader, startLinks, type LinksRun } from './links.js';
import { SS_ARGS, startSs, streamSs, type SsRun } from './ss.js';

// The callback API, not node:fs/promises: that module and what it loads were a tenth of the CLI's start-up.
function readdir(dir: string): Promise<string[]> {
  return new Promise((resolve, reject) => { readdirCallback(dir, (error, names) => { if (error === null) resolve(names); else reject(error); }); });
}

/** TCP states as the kernel numbers them (`include/net/tcp_states.h`), index = state number. */
export const TCP_STATES = Object.freeze([
  'UNKNOWN', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'BOUND_INACTIVE',
] as const);

/** A TCP state name; `UNKNOWN` for a number this list does not know (a newer kernel). */
export type TcpState = (typeof TCP_STATES)[number];

export interface Endpoint {
  /** Canonical text form, as Node prints it (`127.0.0.1`, `::1`, `::ffff:127.0.0.1`, `2001:db8::1`). */
  readonly address: string;
  readonly port: number;
}

/** One row of `/proc/net/tcp` or `/proc/net/tcp6`. */
export interface TcpSocket {
  /** Socket inode: what `/proc/PID/fd/N` links to as `socket:[inode]`. 0 for sockets no descriptor owns (TIME_WAIT, orphans). */
  readonly inode: number;
  /** Which table it came from: 4 (`tcp`) or 6 (`tcp6`, IPv4-mapped addresses included). */
  readonly family: 4 | 6;
  readonly local: Endpoint;
  /** `0.0.0.0:0` or `:::0` for a listening socket. */
  readonly remote: Endpoint;
  readonly state: TcpState;
  /** Bytes queued for sending (not yet acknowledged by the peer). For LISTEN: 0. */
  readonly txQueue: number;
  /** Bytes received and not yet read by the process. For LISTEN: the accept backlog length. */
  readonly rxQueue: number;
  /** Owner's effective uid. */
  readonly uid: number;
}

/** Where to read `/proc` from, and how its hex was written. */
export interface ProcOptions {
  /** Mount point of procfs; point it at a copied tree to read saved samples. @default '/proc' */
  readonly procRoot?: string;
  /**
   * Byte order of the kernel that wrote the tables: addresses are printed as native 32-bit words.
   * @default the byte order of this machine (`os.endianness()`)
   */
  readonly endianness?: 'LE' | 'BE';
}

/**
 * Where a process's sockets are read from: `procfs` (`/proc/PID/net/tcp` and `tcp6`), `ss` (netlink, by
 * running `ss -tanHe` while the descriptors are read), or `auto`: ss when it is found and the process is in
 * this process's network namespace, procfs otherwise.
 */
export type SocketSource = 'auto' | 'procfs' | 'ss';

/**
 * Who reads where a process's descriptors point (`/proc/PID/fd/N` -> `socket:[inode]`) for the /proc
 * tables: `inline`, this thread, a batch at a time between turns of the event loop; `readlink`, coreutils'
 * `readlink` in a child process on another core while this thread reads the tables, and this thread when
 * it cannot be used (not found, busybox's, an argument list too long, a link it could not read).
 */
export type FdReader = 'inline' | 'readlink';

/** Options of {@link readProcessSockets} and {@link snapshotProcess}: where to read, and from which source. */
export interface SocketReadOptions extends ProcOptions {
  /** @default 'procfs' */
  readonly source?: SocketSource;
  /** With the /proc tables (source `procfs`, or `auto` without ss). @default 'inline' (the CLI: `readlink`) */
  readonly fdReader?: FdReader;
}

/** A process's descriptors against its limit. */
export interface FdUsage {
  /** Open file descriptors (entries of `/proc/PID/fd`). */
  readonly open: number;
  /** Soft `Max open files` limit (`ulimit -n`); Infinity when unlimited. */
  readonly limit: number;
  /** Hard limit: how far the process could raise `limit` itself; Infinity when unlimited. */
  readonly hardLimit: number;
}

/** Everything the kernel says about one process at one instant. */
export interface ProcessSnapshot {
  readonly pid: number;
  /** Wall-clock time the snapshot was taken (ms since the epoch). */
  readonly takenAt: number;
  /** The process's own TCP sockets (both tables), filtered by the socket inodes of its descriptors. */
  readonly sockets: readonly TcpSocket[];
  readonly fds: FdUsage;
  readonly threads: number;
  /** What was read: the files under /proc, `PID` standing for the pid (set by {@link snapshotProcess}). */
  readonly source?: string;
}

const OPTION_KEYS = new Set(['procRoot', 'endianness']);
const SOCKET_OPTION_KEYS = new Set(['procRoot', 'endianness', 'source', 'fdReader']);
const SOURCES: readonly string[] = ['auto', 'procfs', 'ss'];

interface Resolved {
  readonly root: string;
  readonly littleEndian: boolean;
}

interface Reading {
  readonly resolved: Resolved;
  readonly source: SocketSource;
  readonly fdReader: FdReader;
}

function resolveSource(options: SocketReadOptions | undefined): Reading {
  if (options === undefined || typeof options !== 'object' || (options as unknown) === null) return { resolved: resolve(options), source: 'procfs', fdReader: 'inline' };
  rejectUnknownKeys(options, SOCKET_OPTION_KEYS, 'the /proc readers');
  const { source, fdReader, ...rest } = options;
  checkFdReader(fdReader);
  if (source !== undefined && !SOURCES.includes(source)) {
    throw new InvalidOptionError('source', `invalid option "source": expected "auto", "procfs" or "ss", got ${describe(source)}`);
  }
  const resolved = resolve(rest);
  if (source === 'ss' && resolved.root !== '/proc') {
    throw new InvalidOptionError('source', `invalid option "source": "ss" reads the live kernel, not a copy under procRoot ${JSON.stringify(resolved.root)}`);
  }
  return { resolved, source: source ?? 'procfs', fdReader: fdReader ?? 'inline' };
}

function resolve(options: ProcOptions | undefined): Resolved {
  if (options === undefined) return { root: '/proc', littleEndian: endianness() === 'LE' };
  if (typeof options !== 'object' || (options as unknown) === null) {
    throw new InvalidOptionError('options', `invalid option "options": expected an object, got ${describe(options)}`);
  }
  rejectUnknownKeys(options, OPTION_KEYS, 'the /proc readers');
  const procRoot: unknown = options.procRoot;
  const order: unknown = options.endianness;
  if (procRoot !== undefined && (typeof procRoot !== 'string' || procRoot.length === 0)) {
    throw new InvalidOptionError('procRoot', `invalid option "procRoot": expected a non-empty path, got ${describe(procRoot)}`);
  }
  if (order !== undefined && order !== 'LE' && order !== 'BE') {
    throw new InvalidOptionError('endianness', `invalid option "endianness": expected "LE" or "BE", got ${describe(order)}`);
  }
  return { root: procRoot ?? '/proc', littleEndian: (order ?? endianness()) === 'LE' };
}

function checkPid(pid: unknown): asserts pid is number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) {
    throw new InvalidOptionError('pid', `invalid option "pid": expected a positive integer, got ${describe(pid)}`);
  }
}

// The real /proc exists on Linux only; a copied tree (procRoot) can be read anywhere.
function checkPlatform(resolved: Resolved): void {
  if (resolved.root === '/proc' && process.platform !== 'linux') {
    throw new DoctorError(DoctorErrorCodes.UNSUPPORTED, `the doctor reads the kernel's tables under /proc, which only Linux has; this is ${process.platform}`);
  }
}

function errno(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

/** Turns a failed read under `/proc/<pid>` into the doctor error that says what it means. */
async function procError(error: unknown, pid: number, file: string, resolved: Resolved): Promise<DoctorError> {
  const code = errno(error);
  if (code === 'EACCES' || code === 'EPERM') {
    return new DoctorError(DoctorErrorCodes.PERMISSION, `cannot read ${file}: permission denied; process ${pid} belongs to another user (run the doctor as that user, or as root)`, { cause: error });
  }
  if (code === 'ENOENT' || code === 'ESRCH') {
    const alive = await readdir(path.join(resolved.root, String(pid))).then(() => true, () => false);
    if (!alive) return new DoctorError(DoctorErrorCodes.NO_PROCESS, `no process ${pid}: ${path.join(resolved.root, String(pid))} does not exist (it never ran, or it has exited)`, { cause: error });
    return new DoctorError(DoctorErrorCodes.UNSUPPORTED, `cannot read ${file}: it does not exist, though process ${pid} does (procfs without TCP tables: a container or sandbox hiding them?)`, { cause: error });
  }
  return new DoctorError(DoctorErrorCodes.UNSUPPORTED, `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

/**
 * Listing `/proc/PID/fd` needs read access to the folder; reading where an entry points needs ptrace
 * access (the same user, or CAP_SYS_PTRACE): root in a container without that capability can list
 * another user's descriptors but not read them.
 */
function linkError(error: unknown, pid: number, file: string): unknown {
  const code = errno(error);
  if (code !== 'EACCES' && code !== 'EPERM') return error;
  return new DoctorError(DoctorErrorCodes.PERMISSION, `cannot read ${file}: permission denied; the descriptors of process ${pid} can be listed but not read, which needs ptrace access to it (run the doctor as its user, or with CAP_SYS_PTRACE)`, { cause: error });
}

function parseError(file: string, line: number, why: string, text: string): DoctorError {
  return new DoctorError(DoctorErrorCodes.PARSE, `${file}:${line}: ${why}: ${JSON.stringify(text.slice(0, 200))}`);
}

/** The bytes of an address column: native 32-bit words of the network-order address, in hex. */
function addressBytes(hex: string, littleEndian: boolean): number[] {
  const bytes: number[] = [];
  for (let at = 0; at < hex.length; at += 8) {
    const word = Number.parseInt(hex.slice(at, at + 8), 16);
    if (littleEndian) bytes.push(word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24);
    else bytes.push(word >>> 24, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff);
  }
  return bytes;
}

/**
 * Decodes an address column (`0100007F`, 32 hex digits for IPv6) to its canonical text form.
 * The kernel prints each 32-bit word of the address with `%08X` as a native integer, so on a
 * little-endian machine the bytes of every word appear reversed: `0100007F` is 127.0.0.1.
 */
export function decodeAddress(hex: string, order: 'LE' | 'BE' = endianness()): string {
  if (!/^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/.test(hex)) {
    throw new DoctorError(DoctorErrorCodes.PARSE, `not an address column of /proc/net/tcp or tcp6 (8 or 32 hex digits): ${JSON.stringify(hex)}`);
  }
  const bytes = addressBytes(hex, order === 'LE');
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // libuv's inet_ntop gives the RFC 5952 form, dotted IPv4-mapped tail included: the same text a
  // net.Socket reports as remoteAddress, which is what the in-process join compares against.
  return canonicalV6(groups.join(':'));
}

/**
 * The canonical form of an address for comparisons: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes the
 * IPv4 address, IPv6 is lower-cased and compressed, a zone (`%eth0`) is dropped.
 */
export function normalizeAddress(address: string): string {
  const bare = address.replace(/%.*$/, '');
  if (!bare.includes(':')) return bare;
  let canonical: string;
  try {
    canonical = canonicalV6(bare);
  } catch {
    return bare.toLowerCase();
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical);
  return mapped?.[1] ?? canonical;
}

/** `address:port`, bracketing IPv6 (`[::1]:5432`). */
export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

function endpoint(column: string, littleEndian: boolean, file: string, line: number, text: string): Endpoint {
  const colon = column.indexOf(':');
  const hexPort = column.slice(colon + 1);
  if (colon < 0 || !/^[0-9A-Fa-f]{4}$/.test(hexPort)) throw parseError(file, line, `bad address:port column ${JSON.stringify(column)}`, text);
  // Ports are printed after ntohs, so they read as ordinary hex.
  return { address: decodeAddress(column.slice(0, colon), littleEndian ? 'LE' : 'BE'), port: Number.parseInt(hexPort, 16) };
}

/**
 * Parses the text of `/proc/net/tcp` or `/proc/net/tcp6` (either: the family is read from each row's
 * address width). `file` only names the source in error messages.
 */
export function parseTcpTable(text: string, options?: ProcOptions & { readonly file?: string }): TcpSocket[] {
  const { file = 'tcp table', ...rest } = options ?? {};
  const { littleEndian } = resolve(rest);
  const sockets: TcpSocket[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index] ?? '';
    const fields = raw.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === '') continue;
    if (fields[0] === 'sl') continue; // the header
    const lineNo = index + 1;
    const [slot, local, remote, st, queues, , , uid, , inode] = fields;
    if (slot === undefined || !/^\d+:$/.test(slot) || local === undefined || remote === undefined || st === undefined
      || queues === undefined || uid === undefined || inode === undefined) {
      throw parseError(file, lineNo, 'expected "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ..."', raw);
    }
    const queue = /^([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,8})$/.exec(queues);
    if (queue === null || !/^[0-9A-Fa-f]{2}$/.test(st) || !/^\d+$/.test(uid) || !/^\d+$/.test(inode)) {
      throw parseError(file, lineNo, 'bad state, queue, uid or inode column', raw);
    }
    const localEnd = endpoint(local, littleEndian, file, lineNo, raw);
    const stateNumber = Number.parseInt(st, 16);
    sockets.push({
      inode: Number(inode),
      family: local.indexOf(':') === 8 ? 4 : 6,
      local: localEnd,
      remote: endpoint(remote, littleEndian, file, lineNo, raw),
      state: TCP_STATES[stateNumber] ?? 'UNKNOWN',
      txQueue: Number.parseInt(queue[1] ?? '0', 16),
      rxQueue: Number.parseInt(queue[2] ?? '0', 16),
      uid: Number(uid),
    });
  }
  return sockets;
}

async function readTable(file: string, resolved: Resolved, pid: number | undefined, optional: boolean, keep: ((inode: number) => boolean) | null, onRow: (row: TcpSocket) => void): Promise<void> {
  try {
    await scanTable(file, resolved.littleEndian, keep, onRow);
  } catch (error) {
    if (error instanceof RowError) throw new DoctorError(DoctorErrorCodes.PARSE, error.message);
    // tcp6 is absent when the kernel runs without IPv6: no IPv6 sockets then, not an error.
    if (optional && errno(error) === 'ENOENT') return;
    if (pid !== undefined) throw await procError(error, pid, file, resolved);
    const denied = errno(error) === 'EACCES' || errno(error) === 'EPERM';
    throw new DoctorError(denied ? DoctorErrorCodes.PERMISSION : DoctorErrorCodes.UNSUPPORTED, `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * Rows into one list, a socket listed twice keeping its last row (see {@link uniqueSockets}). `slots`
 * maps an inode to its row's index; an inode of a process's descriptors maps to -1 until its row is
 * read, so one map both selects the rows and removes repeats.
 */
function collector(rows: TcpSocket[], slots: Map<number, number>, selecting: boolean): (row: TcpSocket) => void {
  return (row) => {
    if (row.inode === 0) {
      rows.push(row);
      return;
    }
    const at = slots.get(row.inode);
    if (at === undefined || at < 0) {
      if (at === undefined && selecting) return;
      slots.set(row.inode, rows.length);
      rows.push(row);
    } else rows[at] = row;
  };
}

/**
 * Both tables of a pid's namespace, one after the other (they share one read buffer). Given `inodes`
 * (inode -> -1, as {@link scanFds} gives them), only those rows; otherwise every row.
 */
async function readTables(pid: number, resolved: Resolved, inodes: Map<number, number> | null): Promise<TcpSocket[]> {
  const rows: TcpSocket[] = [];
  const keep = inodes === null ? null : (inode: number): boolean => inode !== 0 && inodes.has(inode);
  await scanTables(pid, resolved, keep, collector(rows, inodes ?? new Map<number, number>(), inodes !== null));
  return rows;
}

async function scanTables(pid: number, resolved: Resolved, keep: ((inode: number) => boolean) | null, onRow: (row: TcpSocket) => void): Promise<void> {
  const dir = path.join(resolved.root, String(pid), 'net');
  await readTable(path.join(dir, 'tcp'), resolved, pid, false, keep, onRow);
  await readTable(path.join(dir, 'tcp6'), resolved, pid, true, keep, onRow);
}

/**
 * Reads a TCP table. Given a path, that one file. Given a pid, both tables (`tcp` and `tcp6`) of the
 * process's network namespace (`/proc/PID/net/`): every socket there, not only the process's own
 * (see {@link readProcessSockets}).
 */
export async function readTcpTable(source: string | number, options?: ProcOptions): Promise<TcpSocket[]> {
  const resolved = resolve(options);
  if (typeof source === 'string') {
    const rows: TcpSocket[] = [];
    await readTable(source, resolved, undefined, false, null, collector(rows, new Map(), false));
    return rows;
  }
  checkPid(source);
  checkPlatform(resolved);
  return readTables(source, resolved, null);
}

/**
 * The kernel prints these tables a page at a time and resumes by position, so a table that changes while
 * it is read (sockets opening and closing elsewhere in the namespace) can list a socket twice. A socket
 * is its inode: keep its last row, the most recent. Inode 0 (TIME_WAIT and other orphans) has no identity
 * and is kept as is.
 */
export function uniqueSockets(rows: readonly TcpSocket[]): TcpSocket[] {
  const byInode = new Map<number, number>();
  const out: TcpSocket[] = [];
  for (const row of rows) {
    if (row.inode === 0) {
      out.push(row);
      continue;
    }
    const at = byInode.get(row.inode);
    if (at === undefined) {
      byInode.set(row.inode, out.length);
      out.push(row);
    } else out[at] = row;
  }
  return out;
}

async function readFds(pid: number, resolved: Resolved): Promise<{ open: number; inodes: Map<number, number> }> {
  const dir = path.join(resolved.root, String(pid), 'fd');
  try {
    return await scanFds(dir, (error, file) => linkError(error, pid, file));
  } catch (error) {
    if (error instanceof DoctorError) throw error;
    throw await procError(error, pid, dir, resolved);
  }
}

/** Why ss cannot read process `pid`'s sockets, or null when it can: it reads this process's network namespace. */
function ssObstacle(pid: number, resolved: Resolved): string | null {
  if (resolved.root !== '/proc') return 'procRoot is a copy';
  try {
    const own = readlinkSync('/proc/self/ns/net');
    const theirs = readlinkSync(`/proc/${pid}/ns/net`);
    return own === theirs ? null : `process ${pid} is in another network namespace (${theirs}, this one ${own})`;
  } catch (error) {
    return `cannot compare network namespaces (${errno(error) ?? String(error)})`;
  }
}

const PROCFS_SOURCE = (root: string): string => `${root}/PID/net/tcp,tcp6 (streamed) + ${root}/PID/fd`;
const SS_SOURCE = `netlink (ss ${SS_ARGS.join(' ')}) + /proc/PID/fd`;
const SS_SOURCE_STREAMED = `netlink (ss ${SS_ARGS.join(' ')}, streamed) + /proc/PID/fd`;

type Own = { open: number; sockets: TcpSocket[]; source: string };

/**
 * The process's descriptors and its own sockets, from `source`, the descriptors read by `fdReader`. ss
 * and `readlink` each run in a child process, so that with both this thread only parses; `auto` falls
 * back to the /proc tables when ss cannot be used, and `readlink` to reading the descriptors here, the
 * source saying why.
 */
async function readOwnSockets(pid: number, { resolved, source, fdReader }: Reading): Promise<Own> {
  const why = source === 'procfs' ? null : ssObstacle(pid, resolved);
  if (source === 'ss' && why !== null) await refuseSs(pid, resolved, why);
  // A copied tree is read here: it is small, and its links may be plain files.
  const links = fdReader === 'readlink' && resolved.root === '/proc' ? startLinks(path.join(resolved.root, String(pid), 'fd')) : null;
  const notReadlink = typeof links === 'string' ? `readlink: ${links}` : fdReader === 'readlink' && links === null ? 'procRoot is a copy' : null;
  if (links === null || typeof links === 'string') return readAllHere(pid, resolved, source, why, notReadlink);
  let notSs = why;
  if (source !== 'procfs' && why === null) {
    // Both helpers at once: ss's rows are parsed as it prints them, while readlink reads the descriptors.
    const { rows, onRow } = besideRows(links);
    let failure: string | null;
    try {
      failure = await streamSs((inode) => links.inodes === null || links.inodes.has(inode), onRow);
    } catch (error) {
      if (!(error instanceof RowError) || source === 'ss') {
        await links.read();
        throw error instanceof RowError ? new DoctorError(DoctorErrorCodes.PARSE, error.message) : error;
      }
      failure = `its output: ${error.message}`;
    }
    if (failure === null) {
      const joined = await joinBeside(pid, resolved, rows, links);
      return { ...joined, source: `${SS_SOURCE_STREAMED}${readerNote(joined.why)}` };
    }
    if (source === 'ss') {
      // readlink's answer, when it has one, already says the process is there and readable.
      if (typeof (await links.read()) !== 'string') throw ssRefused(pid, failure);
      await refuseSs(pid, resolved, failure);
    }
    notSs = `ss ${failure}`;
  }
  const { rows, onRow } = besideRows(links);
  // Until readlink's answer is in, every row is kept (and decoded); after, only the process's.
  const keep = (inode: number): boolean => inode !== 0 && (links.inodes === null || links.inodes.has(inode));
  try {
    await scanTables(pid, resolved, keep, onRow);
  } catch (error) {
    // Waited for even when the tables failed: no child or temporary file outlives the sample.
    await links.read();
    throw error;
  }
  const joined = await joinBeside(pid, resolved, rows, links);
  return { ...joined, source: `${PROCFS_SOURCE(resolved.root)}${readerNote(joined.why)}${notSs === null ? '' : ` (not ss: ${notSs})`}` };
}

/**
 * The rows read while `readlink` ran (some of other processes, some listed twice), joined to its answer,
 * or, when it could not be used, to the descriptors read here: the inode map selects and removes repeats
 * as it does for rows read after the descriptors.
 */
async function joinBeside(pid: number, resolved: Resolved, rows: readonly TcpSocket[], links: LinksRun): Promise<{ open: number; sockets: TcpSocket[]; why: string | null }> {
  const answer = await links.read();
  const fds = typeof answer === 'string' ? await readFds(pid, resolved) : answer;
  const sockets: TcpSocket[] = [];
  const onRow = collector(sockets, fds.inodes, true);
  for (const row of rows) if (row.inode !== 0) onRow(row);
  return { open: fds.open, sockets, why: typeof answer === 'string' ? answer : null };
}

function ssRefused(pid: number, why: string): DoctorError {
  return new DoctorError(DoctorErrorCodes.UNSUPPORTED, `cannot read the sockets of process ${pid} with ss: ${why}`);
}

/** `source: 'ss'` that ss cannot serve: a process that is gone or not this user's is said so by its descriptors' error (LG_DOCTOR_NO_PROCESS, LG_DOCTOR_PERMISSION); otherwise LG_DOCTOR_UNSUPPORTED. */
async function refuseSs(pid: number, resolved: Resolved, why: string): Promise<never> {
  await readFds(pid, resolved);
  throw ssRefused(pid, why);
}

/** What the source says of the descriptors: read by readlink, or why not. */
function readerNote(why: string | null): string {
  return why === null ? ' (readlink, beside)' : ` (not readlink: ${why})`;
}

/**
 * Every descriptor read here: with ss, `ss` runs while they are read (a second core does the kernel's share
 * of the table; its output waits in a temporary file, as the reads here are synchronous) and its rows are
 * joined by inode; otherwise, and when ss fails under `auto`, the /proc tables.
 */
async function readAllHere(pid: number, resolved: Resolved, source: SocketSource, obstacle: string | null, notReadlink: string | null): Promise<Own> {
  let why = obstacle;
  let ss: SsRun | null = null;
  if (source !== 'procfs' && why === null) {
    const started = startSs();
    if (typeof started === 'string') why = `ss: ${started}`;
    else ss = started;
  }
  if (source === 'ss' && ss === null) await refuseSs(pid, resolved, why ?? '?');
  const reader = notReadlink === null ? '' : ` (not readlink: ${notReadlink})`;
  let fds: { open: number; inodes: Map<number, number> };
  try {
    fds = await readFds(pid, resolved);
  } catch (error) {
    await ss?.cancel();
    throw error;
  }
  const { open, inodes } = fds;
  if (ss !== null) {
    const rows: TcpSocket[] = [];
    let failure: string | null;
    try {
      failure = await ss.read((inode) => inode !== 0 && inodes.has(inode), collector(rows, inodes, true));
    } catch (error) {
      if (!(error instanceof RowError)) throw error;
      if (source === 'ss') throw new DoctorError(DoctorErrorCodes.PARSE, error.message);
      failure = `its output: ${error.message}`;
      // The rows read before the bad line are in the map: start the join again for the /proc tables.
      for (const inode of inodes.keys()) inodes.set(inode, -1);
    }
    if (failure === null) return { open, sockets: rows, source: `${SS_SOURCE}${reader}` };
    if (source === 'ss') throw ssRefused(pid, failure);
    why = `ss ${failure}`;
  }
  const sockets = await readTables(pid, resolved, inodes);
  return { open, sockets, source: `${PROCFS_SOURCE(resolved.root)}${reader}${source !== 'procfs' && why !== null ? ` (not ss: ${why})` : ''}` };
}

/** The socket inodes among a process's open descriptors (`/proc/PID/fd/N` -> `socket:[inode]`). */
export async function readSocketInodes(pid: number, options?: ProcOptions): Promise<Set<number>> {
  const resolved = resolve(options);
  checkPid(pid);
  checkPlatform(resolved);
  return new Set((await readFds(pid, resolved)).inodes.keys());
}

/**
 * The process's own TCP sockets: the rows of its namespace's tables whose inode one of its descriptors
 * holds. The descriptors are read first, so that only those rows are decoded.
 */
export async function readProcessSockets(pid: number, options?: SocketReadOptions): Promise<TcpSocket[]> {
  const reading = resolveSource(options);
  checkPid(pid);
  checkPlatform(reading.resolved);
  return (await readOwnSockets(pid, reading)).sockets;
}

async function readProcFile(pid: number, name: string, resolved: Resolved): Promise<string> {
  const file = path.join(resolved.root, String(pid), name);
  try {
    // Synchronously: a few hundred bytes, and no libuv thread pool started for them (its threads' stacks and
    // arenas were megabytes of the CLI's peak RSS).
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw await procError(error, pid, file, resolved);
  }
}

function limitValue(text: string): number {
  return text === 'unlimited' ? Infinity : Number(text);
}

/** Open descriptors (`/proc/PID/fd`) against the `Max open files` limits (`/proc/PID/limits`). */
export async function readFdUsage(pid: number, options?: ProcOptions): Promise<FdUsage> {
  const resolved = resolve(options);
  checkPid(pid);
  checkPlatform(resolved);
  const dir = path.join(resolved.root, String(pid), 'fd');
  const [limits, open] = await Promise.all([
    readProcFile(pid, 'limits', resolved),
    readdir(dir).then((names) => names.length, async (error: unknown) => { throw await procError(error, pid, dir, resolved); }),
  ]);
  return { open, ...fdLimits(limits, pid, resolved) };
}

function fdLimits(limits: string, pid: number, resolved: Resolved): { limit: number; hardLimit: number } {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
  if (match?.[1] === undefined || match[2] === undefined) {
    throw new DoctorError(DoctorErrorCodes.PARSE, `${path.join(resolved.root, String(pid), 'limits')}: no "Max open files" line`);
  }
  return { limit: limitValue(match[1]), hardLimit: limitValue(match[2]) };
}

function threadCount(status: string, pid: number, resolved: Resolved): number {
  const match = /^Threads:\s+(\d+)$/m.exec(status);
  if (match?.[1] === undefined) throw new DoctorError(DoctorErrorCodes.PARSE, `${path.join(resolved.root, String(pid), 'status')}: no "Threads:" line`);
  return Number(match[1]);
}

/** Thread count of a process (`Threads:` in `/proc/PID/status`). */
export async function readThreads(pid: number, options?: ProcOptions): Promise<number> {
  const resolved = resolve(options);
  checkPid(pid);
  checkPlatform(resolved);
  return threadCount(await readProcFile(pid, 'status', resolved), pid, resolved);
}

/** Sockets, descriptors and threads of a process: the descriptors listed once, for their count and their sockets. */
export async function snapshotProcess(pid: number, options?: SocketReadOptions): Promise<ProcessSnapshot> {
  const reading = resolveSource(options);
  const { resolved } = reading;
  checkPid(pid);
  checkPlatform(resolved);
  const takenAt = Date.now();
  const own = await readOwnSockets(pid, reading);
  const limits = await readProcFile(pid, 'limits', resolved);
  const status = await readProcFile(pid, 'status', resolved);
  return { pid, takenAt, sockets: own.sockets, fds: { open: own.open, ...fdLimits(limits, pid, resolved) }, threads: threadCount(status, pid, resolved), source: own.source };
}
