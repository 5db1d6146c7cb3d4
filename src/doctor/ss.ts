/**
 * The namespace's TCP sockets over netlink, by `ss -tanHe` in a child process, joined to the process's
 * descriptors by inode like the /proc tables: its output waits in a temporary file while the doctor reads
 * the descriptors itself (`startSs`), or is parsed from a pipe as ss prints it while `readlink` reads
 * them in another child (`streamSs`).
 */
import type { ChildProcess } from 'node:child_process';
import type { Endpoint, TcpSocket, TcpState } from './proc.js';
import { exitWhy, startChild, watchChild } from './child.js';
import { canonicalV6, decimal, RowError, scanLines, v4Text } from './scan.js';

/** The arguments the doctor runs `ss` with: TCP, every state, numeric, no header, extended (uid and inode). */
export const SS_ARGS = Object.freeze(['-tanHe']);

/** A running `ss`: its output is read once it has exited. */
export interface SsRun {
  /**
   * Waits for `ss` and streams its rows whose inode `keep` accepts to `onRow`. Resolves null once read,
   * or why `ss` could not be used (not found, failed); throws a RowError for output it cannot parse.
   */
  read(keep: (inode: number) => boolean, onRow: (socket: TcpSocket) => void): Promise<string | null>;
  /** Waits for `ss` and lets its output go, when the sample failed before reading it. */
  cancel(): Promise<void>;
}

/** Starts `ss -tanHe` beside the descriptor reads (see {@link startChild}); returns why not when it cannot be started. */
export function startSs(): SsRun | string {
  const run = startChild('ss', SS_ARGS);
  if (typeof run === 'string') return run;
  return {
    async read(keep, onRow) {
      try {
        const exit = await run.exit;
        if (exit.code !== 0) return exitWhy(exit);
        await scanLines(run.fd, `ss ${SS_ARGS.join(' ')} output`, (buf, start, end) => parseSsRow(buf, start, end, keep), onRow, 0);
        return null;
      } finally {
        run.close();
      }
    },
    async cancel() {
      try {
        await run.exit;
      } finally {
        run.close();
      }
    },
  };
}

/**
 * Runs `ss -tanHe` with its output on a pipe, parsed as it comes: for when nothing on this thread blocks
 * meanwhile (the descriptors read by `readlink` beside), so that ss dumps while this thread parses and
 * neither waits for the other. Calls `onRow` for every row whose inode `keep` accepts (asked as each row
 * is read). Resolves null once ss has exited 0 and every row is read, or why ss could not be used (not
 * found, failed); rejects with a RowError for output it cannot parse (and stops ss).
 */
export async function streamSs(keep: (inode: number) => boolean, onRow: (socket: TcpSocket) => void): Promise<string | null> {
  let child: ChildProcess;
  try {
    child = process.getBuiltinModule('node:child_process').spawn('ss', [...SS_ARGS], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    return `could not be started (${(error as Error).message})`;
  }
  const exit = watchChild(child);
  let carry = '';
  let line = 0;
  // Set by the data listener; read after the await (an initializer typed so, or the checker keeps it null).
  let failed = null as Error | null;
  child.stdout?.setEncoding('latin1');
  child.stdout?.on('data', (chunk: string) => {
    if (failed !== null) return;
    const text = carry === '' ? chunk : carry + chunk;
    const whole = text.lastIndexOf('\n') + 1;
    carry = whole === text.length ? '' : text.slice(whole);
    try {
      if (whole > 0) line = ssText(text, whole, line, keep, onRow);
    } catch (error) {
      failed = error instanceof Error ? error : new Error(String(error));
      child.kill('SIGKILL');
    }
  });
  const ended = await exit;
  if (failed !== null) throw failed;
  if (ended.failed !== null || ended.code !== 0) return exitWhy(ended);
  if (carry !== '') ssText(`${carry}\n`, carry.length + 1, line, keep, onRow);
  return null;
}

// The common line, an IPv4 connection or listener: state, queues, dotted local and peer address:port
// (`*` for none), uid when not 0, inode. Matched by V8's regular expression engine (machine code even with
// the optimizing compiler off) from one line to the next over a chunk of text; any other line (IPv6,
// an interface, a bad line) goes to parseSsRow, which names what is wrong.
const SS_LINE = /([A-Z][A-Z12-]*) +(\d+) +(\d+) +(\d{1,3}(?:\.\d{1,3}){3}):(\d+|\*) +(\d{1,3}(?:\.\d{1,3}){3}):(\d+|\*) +(?:uid:(\d+) +)?ino:(\d+)[^\n]*\n/y;
const STATE_NAMES = new Map<string, TcpState>();
// Dotted addresses as one string each, not one per row.
const dotted = new Map<string, string>();

/** The lines of `text` up to `end` (just after a newline), the first being line `line + 1`; returns the last line's number. */
export function ssText(text: string, end: number, line: number, keep: (inode: number) => boolean, onRow: (socket: TcpSocket) => void): number {
  let at = 0;
  while (at < end) {
    line++;
    SS_LINE.lastIndex = at;
    const m = SS_LINE.exec(text);
    const state = m === null ? undefined : STATE_NAMES.get(m[1] as string);
    if (m === null || state === undefined) {
      const nl = text.indexOf('\n', at);
      const buf = Buffer.from(text.slice(at, nl), 'latin1');
      try {
        const row = parseSsRow(buf, 0, buf.length, keep);
        if (row !== null) onRow(row);
      } catch (error) {
        if (error instanceof RowError) throw new RowError(`ss ${SS_ARGS.join(' ')} output:${line}: ${error.message}: ${JSON.stringify(text.slice(at, Math.min(nl, at + 200)))}`);
        throw error;
      }
      at = nl + 1;
      continue;
    }
    at = SS_LINE.lastIndex;
    const inode = Number(m[9]);
    if (inode === 0 || !keep(inode)) continue;
    const sendQ = Number(m[3]);
    onRow({
      inode,
      family: 4,
      local: { address: dottedText(m[4] as string), port: m[5] === '*' ? 0 : Number(m[5]) },
      remote: { address: dottedText(m[6] as string), port: m[7] === '*' ? 0 : Number(m[7]) },
      state,
      // For a listener ss's Send-Q is the backlog's size; /proc prints 0 there, and the doctor means bytes unsent.
      txQueue: state === 'LISTEN' ? 0 : sendQ,
      rxQueue: Number(m[2]),
      uid: m[8] === undefined ? 0 : Number(m[8]),
    });
  }
  return line;
}

function dottedText(text: string): string {
  let known = dotted.get(text);
  if (known === undefined) {
    // Through the same reader as every other form: 010.0.0.1 or 256.1.1.1 are not addresses.
    const buf = Buffer.from(`${text}:0`, 'latin1');
    known = endpointAt(buf, 0, buf.length).endpoint.address;
    if (dotted.size >= 65_536) dotted.clear();
    dotted.set(text, known);
  }
  return known;
}

const SPACE = 0x20;
const COLON = 0x3a;

/** ss's state names (`sstate_name` in iproute2's ss.c), keyed by length, first and last byte. */
const STATES = new Map<number, { readonly name: string; readonly state: TcpState }>();
for (const [name, state] of [
  ['ESTAB', 'ESTABLISHED'], ['SYN-SENT', 'SYN_SENT'], ['SYN-RECV', 'SYN_RECV'], ['FIN-WAIT-1', 'FIN_WAIT1'],
  ['FIN-WAIT-2', 'FIN_WAIT2'], ['TIME-WAIT', 'TIME_WAIT'], ['UNCONN', 'CLOSE'], ['CLOSE-WAIT', 'CLOSE_WAIT'],
  ['LAST-ACK', 'LAST_ACK'], ['LISTEN', 'LISTEN'], ['CLOSING', 'CLOSING'], ['UNKNOWN', 'UNKNOWN'],
] as const) {
  STATES.set(stateKey(name.length, name.charCodeAt(0), name.charCodeAt(name.length - 1)), { name, state });
  STATE_NAMES.set(name, state);
}

function stateKey(length: number, first: number, last: number): number {
  return length * 65536 + first * 256 + last;
}

function stateAt(buf: Buffer, start: number, end: number): TcpState {
  const known = STATES.get(stateKey(end - start, buf[start] ?? 0, buf[end - 1] ?? 0));
  if (known === undefined) throw new RowError('unknown state');
  for (let i = 0; i < known.name.length; i++) if (buf[start + i] !== known.name.charCodeAt(i)) throw new RowError('unknown state');
  return known.state;
}

const v6Texts = new Map<string, string>();

/**
 * `ADDRESS[%IFNAME]:PORT` as ss prints it: IPv4 dotted, IPv6 in brackets, `*` for the IPv6 wildcard of a
 * dual-stack socket, `*` for port 0.
 */
function endpointAt(buf: Buffer, start: number, end: number): { endpoint: Endpoint; family: 4 | 6 } {
  let colon = end - 1;
  while (colon > start && buf[colon] !== COLON) colon--;
  const port = buf[colon + 1] === 0x2a /* * */ && colon + 2 === end ? 0 : decimal(buf, colon + 1, end);
  if (colon <= start || port < 0 || port > 65535) throw new RowError('bad address:port column');
  let stop = colon;
  for (let i = start; i < colon; i++) {
    if (buf[i] === 0x25 /* % */) {
      stop = i;
      break;
    }
  }
  if (buf[start] === 0x5b /* [ */) {
    if (buf[stop - 1] !== 0x5d /* ] */) throw new RowError('bad IPv6 address');
    const text = buf.toString('latin1', start + 1, stop - 1);
    let address = v6Texts.get(text);
    if (address === undefined) {
      try {
        address = canonicalV6(text);
      } catch {
        throw new RowError('bad IPv6 address');
      }
      if (v6Texts.size >= 65_536) v6Texts.clear();
      v6Texts.set(text, address);
    }
    return { endpoint: { address, port }, family: 6 };
  }
  if (stop === start + 1 && buf[start] === 0x2a /* * */) return { endpoint: { address: '::', port }, family: 6 };
  // Dotted IPv4 into the word /proc would print on a little-endian machine: one cache for both readers.
  let word = 0;
  let at = start;
  for (let part = 0; part < 4; part++) {
    let value = 0;
    const first = at;
    while (at < stop && (buf[at] ?? 0) >= 0x30 && (buf[at] ?? 0) <= 0x39) value = value * 10 + (buf[at++] ?? 0) - 0x30;
    if (at === first || value > 255 || (part < 3 ? buf[at++] !== 0x2e /* . */ : at !== stop)) throw new RowError('bad IPv4 address');
    word += value * 2 ** (8 * part);
  }
  return { endpoint: { address: v4Text(word, true), port }, family: 4 };
}

const INO = Buffer.from(' ino:', 'latin1');
const bounds = new Int32Array(10);

/**
 * One line of `ss -tanHe`: `STATE RECV-Q SEND-Q LOCAL PEER [uid:N] ino:N sk:... ...`. The inode is found
 * first, so a row of another process costs one search. Returns null for a row not kept.
 */
export function parseSsRow(buf: Buffer, start: number, end: number, keep: ((inode: number) => boolean) | null): TcpSocket | null {
  if (start === end) return null;
  const ino = buf.indexOf(INO, start);
  if (ino < 0 || ino >= end) throw new RowError('no ino: column (ss without -e?)');
  let inodeEnd = ino + 5;
  while (inodeEnd < end && buf[inodeEnd] !== SPACE) inodeEnd++;
  const inode = decimal(buf, ino + 5, inodeEnd);
  if (inode < 0) throw new RowError('bad ino: column');
  if (keep !== null && !keep(inode)) return null;
  // Start and end of the five leading columns: bounds[2k], bounds[2k + 1].
  let count = 0;
  let i = start;
  while (count < 10) {
    while (i < ino && buf[i] === SPACE) i++;
    if (i >= ino) break;
    bounds[count++] = i;
    while (i < ino && buf[i] !== SPACE) i++;
    bounds[count++] = i;
  }
  if (count < 10) throw new RowError('expected "State Recv-Q Send-Q Local:Port Peer:Port ... ino:N"');
  const at = (k: number): number => bounds[k] ?? 0;
  const state = stateAt(buf, at(0), at(1));
  const recvQ = decimal(buf, at(2), at(3));
  const sendQ = decimal(buf, at(4), at(5));
  if (recvQ < 0 || sendQ < 0) throw new RowError('bad Recv-Q or Send-Q column');
  const local = endpointAt(buf, at(6), at(7));
  const remote = endpointAt(buf, at(8), at(9)).endpoint;
  // uid: printed only when it is not 0, as the column just before ino: (however many spaces apart).
  let uid = 0;
  let last = ino;
  while (last > at(9) && buf[last - 1] === SPACE) last--;
  let first = last;
  while (first > at(9) && buf[first - 1] !== SPACE) first--;
  if (first > at(9) && last - first > 4 && buf[first] === 0x75 && buf[first + 1] === 0x69 && buf[first + 2] === 0x64 && buf[first + 3] === COLON /* uid: */) {
    uid = decimal(buf, first + 4, last);
    if (uid < 0) throw new RowError('bad uid: column');
  }
  return {
    inode,
    family: local.family,
    local: local.endpoint,
    remote,
    state,
    // For a listener ss's Send-Q is the backlog's size; /proc prints 0 there, and the doctor means bytes unsent.
    txQueue: state === 'LISTEN' ? 0 : sendQ,
    rxQueue: recvQ,
    uid,
  };
}
