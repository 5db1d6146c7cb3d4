/**
 * The fast path of the /proc readers: streams `/proc/PID/net/tcp{,6}` through one reused buffer and parses
 * bytes, building objects only for the rows a caller keeps (by inode), and reads a process's descriptor
 * links with a bounded number in flight. One sample of a process with 20,000 sockets in a namespace of
 * 100,000 then allocates about what it returns, not a string per line and a promise per descriptor.
 */
import { closeSync, opendirSync, openSync, readlinkSync, readSync, type Dir } from 'node:fs';
import type { SocketAddress as SocketAddressClass } from 'node:net';
import { TCP_STATES, type Endpoint, type TcpSocket } from './proc.js';

const turn = (): Promise<void> => new Promise((resolve) => { setImmediate(resolve); });

// node:net (and the streams it loads) is a tenth of the CLI's start-up; only IPv6 addresses need it.
let SocketAddress: typeof SocketAddressClass | null = null;

/** The canonical (RFC 5952, as Node prints it) form of an IPv6 address; throws on one that is not. */
export function canonicalV6(address: string): string {
  SocketAddress ??= process.getBuiltinModule('node:net').SocketAddress;
  return new SocketAddress({ address, family: 'ipv6' }).address;
}

const CHUNK = 256 * 1024;
const NL = 0x0a;
const SPACE = 0x20;
const COLON = 0x3a;

/** Value of an ASCII hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function hex(buf: Buffer, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = hexDigit(buf[i] ?? 0);
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

/** The unsigned decimal in `buf[start, end)`, or -1 when it is empty or holds anything but digits. */
export function decimal(buf: Buffer, start: number, end: number): number {
  if (end <= start) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = (buf[i] ?? 0) - 0x30;
    if (c < 0 || c > 9) return -1;
    value = value * 10 + c;
  }
  return value;
}

/** Why a row could not be read; the caller names the file and line. */
export class RowError extends Error {}

/** Decoded addresses, shared across rows and samples: a busy process talks to few distinct hosts. */
const v4Cache = new Map<number, string>();
const v6Cache = new Map<string, string>();
const CACHE_MAX = 65_536;

export function v4Text(word: number, littleEndian: boolean): string {
  // One cache for both byte orders: the key's bit 32 says which.
  const key = littleEndian ? word : word + 2 ** 32;
  let text = v4Cache.get(key);
  if (text !== undefined) return text;
  text = littleEndian
    ? `${word & 0xff}.${(word >>> 8) & 0xff}.${(word >>> 16) & 0xff}.${word >>> 24}`
    : `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
  if (v4Cache.size >= CACHE_MAX) v4Cache.clear();
  v4Cache.set(key, text);
  return text;
}

function v6Text(buf: Buffer, start: number, littleEndian: boolean): string {
  const key = buf.toString('latin1', start, start + 32) + (littleEndian ? 'L' : 'B');
  let text = v6Cache.get(key);
  if (text !== undefined) return text;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex(buf, start + w * 8, start + w * 8 + 8);
    if (word < 0) throw new RowError('bad IPv6 address column');
    if (littleEndian) bytes.push(word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24);
    else bytes.push(word >>> 24, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff);
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  text = canonicalV6(groups.join(':'));
  if (v6Cache.size >= CACHE_MAX) v6Cache.clear();
  v6Cache.set(key, text);
  return text;
}

/** `ADDR:PORT` from `start` to `end` (8 or 32 hex digits, a colon, 4). */
function endpointAt(buf: Buffer, start: number, end: number, littleEndian: boolean): Endpoint {
  const width = end - start - 5;
  if ((width !== 8 && width !== 32) || buf[start + width] !== COLON) throw new RowError('bad address:port column');
  const port = hex(buf, start + width + 1, end);
  if (port < 0) throw new RowError('bad port');
  if (width === 8) {
    const word = hex(buf, start, start + 8);
    if (word < 0) throw new RowError('bad IPv4 address column');
    return { address: v4Text(word, littleEndian), port };
  }
  return { address: v6Text(buf, start, littleEndian), port };
}

const bounds = new Int32Array(20);
const from = (column: number): number => bounds[2 * column] ?? 0;
const to = (column: number): number => bounds[2 * column + 1] ?? 0;

// local:port remote:port st tx:rx, from the local address on.
const HEX_COLUMNS = /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4}) ([0-9A-Fa-f]+):([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{2}) ([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8})$/;
const ZEROS = '00000000';

// Address text by the column's hex, per byte order: one lookup per address once a peer has been seen.
const addressTexts = [new Map<string, string>(), new Map<string, string>()] as const;

function addressText(hex: string | undefined, buf: Buffer | null, start: number, littleEndian: boolean): string {
  if (hex === undefined) throw new RowError('no address');
  const cache = addressTexts[littleEndian ? 1 : 0];
  let text = cache.get(hex);
  if (text === undefined) {
    text = hex.length === 8 ? v4Text(Number.parseInt(hex, 16), littleEndian) : v6Text(buf ?? Buffer.from(hex, 'latin1'), buf === null ? 0 : start, littleEndian);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(hex, text);
  }
  return text;
}

/**
 * A row in the layout the kernel prints (tcp4_seq_show, tcp6_seq_show and their time-wait and
 * request-socket variants share it), read by offsets: after "sl:" every column up to `retrnsmt` has a fixed
 * width, then uid, timeout and inode, space-padded. A row of another process is left once its inode is
 * read. Returns undefined when the row is not laid out so or a digit is not one, and the caller parses it
 * column by column (which names what is wrong).
 */
function fixedRow(buf: Buffer, start: number, end: number, littleEndian: boolean, keep: ((inode: number) => boolean) | null): TcpSocket | null | undefined {
  // "%4d: ": below slot 10000 the colon is the fifth byte.
  let i = start + 4;
  const last = buf[start + 3] ?? 0;
  if (buf[i] !== COLON || last < 0x30 || last > 0x39) {
    i = start;
    while (i < end && buf[i] === SPACE) i++;
    const slot = i;
    while (i < end && (buf[i] ?? 0) >= 0x30 && (buf[i] ?? 0) <= 0x39) i++;
    if (i === slot || buf[i] !== COLON) return undefined;
  }
  if (buf[i + 1] !== SPACE) return undefined;
  const local = i + 2;
  const width = buf[local + 8] === COLON ? 8 : buf[local + 32] === COLON ? 32 : 0;
  if (width === 0) return undefined;
  const remote = local + width + 6;
  const state = remote + width + 6;
  const uid = state + 42;
  if (uid >= end || buf[remote - 1] !== SPACE || buf[remote + width] !== COLON || buf[state - 1] !== SPACE
    || buf[state + 2] !== SPACE || buf[state + 11] !== COLON || buf[state + 20] !== SPACE || buf[uid - 1] !== SPACE) return undefined;
  // uid, timeout and inode: space-padded decimals.
  i = uid;
  while (i < end && buf[i] === SPACE) i++;
  const uidFirst = i;
  while (i < end && buf[i] !== SPACE) i++;
  const uidValue = decimal(buf, uidFirst, i);
  if (uidValue < 0) return undefined;
  while (i < end && buf[i] === SPACE) i++;
  const timeout = i;
  while (i < end && buf[i] !== SPACE) i++;
  if (i === timeout) return undefined;
  while (i < end && buf[i] === SPACE) i++;
  const inodeFirst = i;
  while (i < end && buf[i] !== SPACE) i++;
  const inode = decimal(buf, inodeFirst, i);
  if (inode < 0) return undefined;
  if (keep !== null && !keep(inode)) return null;
  // A kept row's hex columns are matched by a regular expression, which V8 compiles to machine code even
  // where its optimizing compiler is off (the one-off CLI): reading them a byte at a time from unoptimized
  // code cost two property loads per digit, and was most of a row's cost.
  const columns = HEX_COLUMNS.exec(buf.toString('latin1', local, state + 20));
  if (columns === null || columns[1]?.length !== width || columns[3]?.length !== width) return undefined;
  // Indexed, not destructured: destructuring walks an iterator, several calls per column when unoptimized.
  const localAddress = addressText(columns[1], buf, local, littleEndian);
  const remoteAddress = addressText(columns[3], buf, remote, littleEndian);
  const localPort = Number.parseInt(columns[2] as string, 16);
  const remotePort = Number.parseInt(columns[4] as string, 16);
  const stateNumber = Number.parseInt(columns[5] as string, 16);
  const tx = columns[6] === ZEROS ? 0 : Number.parseInt(columns[6] as string, 16);
  const rx = columns[7] === ZEROS ? 0 : Number.parseInt(columns[7] as string, 16);
  return {
    inode,
    family: width === 8 ? 4 : 6,
    local: { address: localAddress, port: localPort },
    remote: { address: remoteAddress, port: remotePort },
    state: TCP_STATES[stateNumber] ?? 'UNKNOWN',
    txQueue: tx,
    rxQueue: rx,
    uid: uidValue,
  };
}

/**
 * Parses the row from `start` to `end` (no newline) if `keep(inode)`; returns null for a header, a blank
 * line or a row not kept. Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
 */
export function parseRow(buf: Buffer, start: number, end: number, littleEndian: boolean, keep: ((inode: number) => boolean) | null): TcpSocket | null {
  // Rows as the kernel prints them are read by offsets (a row of another process skipped once its inode is
  // read); anything else, column by column.
  const fixed = fixedRow(buf, start, end, littleEndian, keep);
  if (fixed !== undefined) return fixed;
  // Start and end of the first 10 columns: bounds[2k], bounds[2k + 1].
  let count = 0;
  let i = start;
  while (count < 10) {
    while (i < end && buf[i] === SPACE) i++;
    if (i >= end) break;
    bounds[2 * count] = i;
    while (i < end && buf[i] !== SPACE) i++;
    bounds[2 * count + 1] = i;
    count++;
  }
  if (count === 0) return null;
  if (buf[from(0)] === 0x73 /* "sl" header */) return null;
  if (count < 10) throw new RowError('expected "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ..."');
  const inode = decimal(buf, from(9), to(9));
  if (inode < 0) throw new RowError('bad inode column');
  if (keep !== null && !keep(inode)) return null;
  const state = hex(buf, from(3), to(3));
  const uid = decimal(buf, from(7), to(7));
  const qs = from(4);
  const qe = to(4);
  let colon = qs;
  while (colon < qe && buf[colon] !== COLON) colon++;
  const tx = hex(buf, qs, colon);
  const rx = hex(buf, colon + 1, qe);
  if (state < 0 || to(3) - from(3) !== 2 || uid < 0 || tx < 0 || rx < 0 || colon === qs || colon === qe) throw new RowError('bad state, queue, uid or inode column');
  const local = endpointAt(buf, from(1), to(1), littleEndian);
  return {
    inode,
    family: to(1) - from(1) === 13 ? 4 : 6,
    local,
    remote: endpointAt(buf, from(2), to(2), littleEndian),
    state: TCP_STATES[state] ?? 'UNKNOWN',
    txQueue: tx,
    rxQueue: rx,
    uid,
  };
}

// One buffer for every read: the reads of a sample run one after another.
let shared: Buffer | null = null;

/**
 * Streams a TCP table file (`/proc/PID/net/tcp` or `tcp6`), calling `onRow` for every row kept. Reads synchronously a chunk at a time and
 * yields to the event loop between chunks, so an in-process sampler never blocks it for long. Throws the
 * fs error of the open (the caller turns it into a doctor error) or a RowError with the line number.
 */
export async function scanTable(file: string, littleEndian: boolean, keep: ((inode: number) => boolean) | null, onRow: (socket: TcpSocket) => void): Promise<void> {
  const fd = openSync(file, 'r');
  const parse: LineParser = (buf, start, end) => parseRow(buf, start, end, littleEndian, keep);
  try {
    await scanChunks(fd, file, (buf, start, end, line) => tableChunk(buf, start, end, line, file, littleEndian, keep, parse, onRow), parse, onRow, null);
  } finally {
    closeSync(fd);
  }
}

// A row as the kernel prints it, from its slot to the end of its line: local and remote address:port,
// state, tx:rx queues, then (tr:when and retrnsmt skipped) uid, timeout and inode. Run over a whole chunk
// of text from one position to the next (sticky), V8's regular expression engine (machine code even
// with the optimizing compiler off) does the work that the byte-by-byte reader did in unoptimized code:
// half the CPU of a sample's parse.
const TABLE_ROW = /[ ]*\d+: ([0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{24})?):([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{24})?):([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{2}) ([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8}) [0-9A-Fa-f]{2}:[0-9A-Fa-f]{8} [0-9A-Fa-f]{8} +(\d+) +\d+ (\d+)[^\n]*\n/y;

/**
 * The whole lines from `start` to `end` (just after a newline) of a TCP table: each matched by
 * {@link TABLE_ROW}, a row of another process left once its inode is read; a line it does not match (the
 * header, another layout, a bad row) goes to `parse`, which names what is wrong. Returns the lines read.
 */
function tableChunk(buf: Buffer, start: number, end: number, line: number, name: string, littleEndian: boolean, keep: ((inode: number) => boolean) | null, parse: LineParser, onRow: (socket: TcpSocket) => void): number {
  let lines = 0;
  // Text a piece at a time, each under V8's large-object size (128 KB): a larger string is allocated in
  // the large-object space, which only a full collection frees (3 MB of a sample's peak RSS).
  for (let from = start; from < end;) {
    const stop = from + TEXT_PIECE >= end ? end : buf.lastIndexOf(NL, from + TEXT_PIECE - 1) + 1;
    // A line longer than a piece: the rest of the chunk in one.
    const to = stop > from ? stop : end;
    lines += tablePiece(buf, from, to, line + lines, name, littleEndian, keep, parse, onRow);
    from = to;
  }
  return lines;
}

const TEXT_PIECE = 64 * 1024;

function tablePiece(buf: Buffer, start: number, end: number, line: number, name: string, littleEndian: boolean, keep: ((inode: number) => boolean) | null, parse: LineParser, onRow: (socket: TcpSocket) => void): number {
  const text = buf.toString('latin1', start, end);
  let lines = 0;
  let at = 0;
  while (at < text.length) {
    lines++;
    TABLE_ROW.lastIndex = at;
    const m = TABLE_ROW.exec(text);
    // Indexed, not destructured: destructuring walks an iterator, several calls per column when unoptimized.
    const local = m?.[1];
    const remote = m?.[3];
    if (m === null || local === undefined || remote === undefined || local.length !== remote.length) {
      const nl = text.indexOf('\n', at);
      parseLine(buf, start + at, start + nl, line + lines, name, parse, onRow);
      at = nl + 1;
      continue;
    }
    at = TABLE_ROW.lastIndex;
    const inode = Number(m[9]);
    if (keep !== null && !keep(inode)) continue;
    onRow({
      inode,
      family: local.length === 8 ? 4 : 6,
      local: { address: addressText(local, null, 0, littleEndian), port: Number.parseInt(m[2] as string, 16) },
      remote: { address: addressText(remote, null, 0, littleEndian), port: Number.parseInt(m[4] as string, 16) },
      state: TCP_STATES[Number.parseInt(m[5] as string, 16)] ?? 'UNKNOWN',
      txQueue: m[6] === ZEROS ? 0 : Number.parseInt(m[6] as string, 16),
      rxQueue: m[7] === ZEROS ? 0 : Number.parseInt(m[7] as string, 16),
      uid: Number(m[8]),
    });
  }
  return lines;
}

/** One line through `parse`, a RowError given the file and line number. */
function parseLine(buf: Buffer, start: number, end: number, line: number, name: string, parse: LineParser, onRow: (socket: TcpSocket) => void): void {
  try {
    const row = parse(buf, start, end);
    if (row !== null) onRow(row);
  } catch (error) {
    if (error instanceof RowError) throw new RowError(`${name}:${line}: ${error.message}: ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 200)))}`);
    throw error;
  }
}

/** Parses the line from `start` to `end` (no newline): a row, or null for a line to skip; throws a RowError. */
export type LineParser = (buf: Buffer, start: number, end: number) => TcpSocket | null;

/**
 * Streams the lines of an open file (from its current position, or from byte `from`) through one reused
 * buffer, calling `onRow` for every row `parse` returns; `name` names the file in a RowError.
 */
export async function scanLines(fd: number, name: string, parse: LineParser, onRow: (socket: TcpSocket) => void, from: number | null = null): Promise<void> {
  await scanChunks(fd, name, (buf, start, end, line) => {
    let lines = 0;
    let at = start;
    while (at < end) {
      const nl = buf.indexOf(NL, at);
      lines++;
      parseLine(buf, at, nl, line + lines, name, parse, onRow);
      at = nl + 1;
    }
    return lines;
  }, parse, onRow, from);
}

/** Parses the whole lines from `start` to `end` (just after a newline), the first being line `line + 1`; returns how many it read. */
type ChunkParser = (buf: Buffer, start: number, end: number, line: number) => number;

/**
 * Reads an open file a buffer at a time, handing each buffer's whole lines to `chunk` and a last line
 * without a newline to `parse`.
 */
async function scanChunks(fd: number, name: string, chunk: ChunkParser, parse: LineParser, onRow: (socket: TcpSocket) => void, from: number | null): Promise<void> {
  let position = from;
  // A caller running concurrently (two samplers in one process) gets its own buffer.
  const buf = shared ?? Buffer.allocUnsafe(CHUNK);
  shared = null;
  try {
    let filled = 0;
    let line = 0;
    for (;;) {
      if (filled === buf.length) throw new RowError(`a line longer than ${buf.length} bytes`);
      // The kernel hands these tables out a page (27 rows) at a time: the buffer is filled before it is
      // parsed, so that the event loop gets a turn and the partial last line is moved once per 256 KB, not
      // once per page (750 turns for 20,000 sockets).
      let total = filled;
      let n = 1;
      while (total < buf.length) {
        n = readSync(fd, buf, total, buf.length - total, position);
        if (n === 0) break;
        total += n;
        if (position !== null) position += n;
      }
      // (lastIndexOf with a negative offset would count from the buffer's end.)
      const whole = total === 0 ? 0 : buf.lastIndexOf(NL, total - 1) + 1;
      if (whole > 0) line += chunk(buf, 0, whole, line);
      if (n === 0) {
        if (whole < total) parseLine(buf, whole, total, line + 1, name, parse, onRow);
        // A turn per file read, the last included, as when every read yielded: the event loop also closes
        // handles then, and a sampler's callers (and their no-handle-left checks) saw them closed after it.
        await turn();
        return;
      }
      buf.copyWithin(0, whole, total);
      filled = total - whole;
      await turn();
    }
  } finally {
    shared = buf;
  }
}

// Links read between two turns of the event loop: about 10 ms of an in-process sampler's blocking. One
// readlinkSync after another costs half the CPU of the same links read on libuv's thread pool (a request,
// a callback and two thread hand-offs each), and starts no pool threads (their stacks and malloc arenas
// were megabytes of a sample's peak RSS).
const BATCH = 1024;

/**
 * The entries of `/proc/PID/fd` and the socket inodes they link to (each mapped to -1), read synchronously a batch at a time,
 * yielding to the event loop between batches. A failed listing throws its fs error; `onLinkError` turns a
 * failed readlink into the caller's error; a descriptor closed between the listing and its readlink
 * (ENOENT) is skipped.
 */
export async function scanFds(dir: string, onLinkError: (error: unknown, file: string) => unknown): Promise<{ open: number; inodes: Map<number, number> }> {
  // Read a thousand entries at a time, not all 20,000 names at once: fewer objects alive at a time is a
  // smaller young generation and a lower peak RSS.
  const listing = opendirSync(dir, { bufferSize: BATCH });
  // inode -> -1: the TCP table readers keep a row's index there (a Map, not a Set, so that one structure
  // both selects the process's rows and removes a row the kernel listed twice).
  const inodes = new Map<number, number>();
  const prefix = `${dir}/`;
  let open = 0;
  try {
    for (;;) {
      const read = linkBatch(listing, prefix, inodes, onLinkError);
      open += read;
      if (read < BATCH) break;
      await turn();
    }
  } finally {
    listing.closeSync();
  }
  return { open, inodes };
}

// Synchronous and apart from the async caller: V8 optimizes a small plain function cheaply, where the
// loop inside the async function took 70 ms of compiling (and megabytes of compiler memory).
function linkBatch(listing: Dir, prefix: string, inodes: Map<number, number>, onLinkError: (error: unknown, file: string) => unknown): number {
  let read = 0;
  while (read < BATCH) {
    const entry = listing.readSync();
    if (entry === null) break;
    read++;
    const file = prefix + entry.name;
    let link: string;
    try {
      link = readlinkSync(file);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') continue;
      throw onLinkError(error, file);
    }
    // "socket:[12345]"
    if (link.length > 9 && link.charCodeAt(0) === 0x73 && link.startsWith('socket:[')) {
      const inode = decimalText(link, 8, link.length - 1);
      if (inode >= 0) inodes.set(inode, -1);
    }
  }
  return read;
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

/** The decimal number from `start` to `end` of a string, or -1 when it is not one. */
function decimalText(text: string, start: number, end: number): number {
  if (end <= start) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    value = value * 10 + c;
  }
  return value;
}
