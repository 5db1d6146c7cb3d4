import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseTcpTable, readTcpTable, uniqueSockets, type TcpSocket } from '../../src/doctor/index.js';
import { scanTable } from '../../src/doctor/scan.js';

// The streaming reader (bytes, one reused buffer, rows kept by inode) against the text parser, on the
// same files: they must agree row for row, across chunk boundaries and without a final newline.
const fixtures = fileURLToPath(new URL('../../../test/fixtures/proc/', import.meta.url));

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}

/** A kernel-formatted row (tcp4_seq_show / tcp6_seq_show layout). */
function row(slot: number, local: string, lport: number, remote: string, rport: number, state: number, inode: number): string {
  return `${String(slot).padStart(4)}: ${local}:${hex(lport, 4)} ${remote}:${hex(rport, 4)} ${hex(state, 2)} 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 1 0000000000000000 20 4 30 10 -1`;
}

describe('the streaming TCP table reader', () => {
  it('reads the fixture tables exactly as the text parser does', async () => {
    for (const file of ['4242/net/tcp', '4242/net/tcp6']) {
      const full = path.join(fixtures, file);
      assert.deepEqual(await readTcpTable(full, { endianness: 'LE' }), parseTcpTable(readFileSync(full, 'utf8'), { endianness: 'LE' }));
    }
  });

  it('agrees with the text parser on generated tables larger than its buffer, with or without a final newline', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-scan-'));
    try {
      await fc.assert(fc.asyncProperty(
        fc.array(fc.record({
          v6: fc.boolean(),
          words: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
          lport: fc.integer({ min: 0, max: 65535 }), rport: fc.integer({ min: 0, max: 65535 }),
          state: fc.integer({ min: 1, max: 13 }), inode: fc.integer({ min: 0, max: 2 ** 32 }),
        }), { minLength: 0, maxLength: 40 }),
        fc.integer({ min: 0, max: 2500 }),
        fc.boolean(),
        async (rows, padding, finalNewline) => {
          const lines = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'];
          rows.forEach((r, i) => {
            const addr = (w: number[]): string => (r.v6 ? w.map((x) => hex(x, 8)).join('') : hex(w[0] ?? 0, 8));
            lines.push(row(i, addr(r.words.slice(0, 4)), r.lport, addr(r.words.slice(4)), r.rport, r.state, r.inode));
          });
          // Filler rows push the table past the reader's 256 KB buffer.
          for (let i = 0; i < padding; i++) lines.push(row(1000 + i, '0100007F', 1024 + i, '0100007F', 5432, 1, 5_000_000 + i));
          const text = lines.join('\n') + (finalNewline ? '\n' : '');
          const file = path.join(dir, 'tcp');
          writeFileSync(file, text);
          // Rows repeating an inode (the kernel's paging can list a socket twice) are one socket in both.
          assert.deepEqual(await readTcpTable(file, { endianness: 'LE' }), uniqueSockets(parseTcpTable(text, { endianness: 'LE' })));
        },
      ), { numRuns: 25 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps exactly the rows whose inode is asked for, the other rows skipped by the kernel\'s fixed layout (any slot, uid or timeout width)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-scan-'));
    try {
      await fc.assert(fc.asyncProperty(
        fc.array(fc.record({
          v6: fc.boolean(),
          slot: fc.integer({ min: 0, max: 2_000_000 }),
          words: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
          state: fc.integer({ min: 1, max: 13 }),
          uid: fc.integer({ min: 0, max: 2 ** 31 }),
          timeout: fc.integer({ min: 0, max: 10 ** 9 }),
          inode: fc.integer({ min: 0, max: 2 ** 32 }),
          kept: fc.boolean(),
        }), { minLength: 0, maxLength: 30 }),
        async (rows) => {
          const lines = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'];
          for (const r of rows) {
            const addr = (w: number[]): string => (r.v6 ? w.map((x) => hex(x, 8)).join('') : hex(w[0] ?? 0, 8));
            lines.push(`${String(r.slot).padStart(4)}: ${addr(r.words.slice(0, 4))}:1F90 ${addr(r.words.slice(4))}:0050 ${hex(r.state, 2)} 00000000:00000000 00:00000000 00000000 ${String(r.uid).padStart(5)} ${String(r.timeout).padStart(8)} ${r.inode} 1 0000000000000000 20 4 30 10 -1`);
          }
          const text = `${lines.join('\n')}\n`;
          const file = path.join(dir, 'tcp');
          writeFileSync(file, text);
          const wanted = new Set(rows.filter((r) => r.kept).map((r) => r.inode));
          const got: TcpSocket[] = [];
          await scanTable(file, true, (inode) => wanted.has(inode), (socket) => { got.push(socket); });
          assert.deepEqual(got, parseTcpTable(text, { endianness: 'LE' }).filter((socket) => wanted.has(socket.inode)));
        },
      ), { numRuns: 50 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads queues, lower-case hex and rows whose two addresses differ in width as the text parser does', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-scan-'));
    try {
      await fc.assert(fc.asyncProperty(
        fc.array(fc.record({
          localV6: fc.boolean(), remoteV6: fc.boolean(), lower: fc.boolean(),
          words: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
          tx: fc.integer({ min: 0, max: 0xffffffff }), rx: fc.integer({ min: 0, max: 0xffffffff }),
          state: fc.integer({ min: 1, max: 13 }), uid: fc.integer({ min: 0, max: 2 ** 31 }), inode: fc.integer({ min: 1, max: 2 ** 32 }),
        }), { minLength: 0, maxLength: 30 }),
        async (rows) => {
          const lines = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'];
          rows.forEach((r, i) => {
            const addr = (w: number[], v6: boolean): string => (v6 ? w.map((x) => hex(x, 8)).join('') : hex(w[0] ?? 0, 8));
            const text = `${String(i).padStart(4)}: ${addr(r.words.slice(0, 4), r.localV6)}:1F90 ${addr(r.words.slice(4), r.remoteV6)}:0050 ${hex(r.state, 2)} ${hex(r.tx, 8)}:${hex(r.rx, 8)} 00:00000000 00000000 ${String(r.uid).padStart(5)}        0 ${r.inode} 1 0000000000000000 20 4 30 10 -1`;
            lines.push(r.lower ? text.toLowerCase() : text);
          });
          const text = `${lines.join('\n')}\n`;
          const file = path.join(dir, 'tcp');
          writeFileSync(file, text);
          let expected: TcpSocket[] | Error;
          try {
            expected = uniqueSockets(parseTcpTable(text, { endianness: 'LE' }));
          } catch (error) {
            expected = error as Error;
          }
          if (expected instanceof Error) await assert.rejects(readTcpTable(file, { endianness: 'LE' }), { code: 'LG_DOCTOR_PARSE' });
          else assert.deepEqual(await readTcpTable(file, { endianness: 'LE' }), expected);
        },
      ), { numRuns: 100 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the file and line of a malformed row', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-scan-'));
    try {
      const file = path.join(dir, 'tcp');
      writeFileSync(file, `  sl  local_address\n${row(0, '0100007F', 80, '0100007F', 81, 1, 7)}\n   1: 0100007F:ZZZZ 0100007F:0050 01 00000000:00000000 00:00000000 00000000 0 0 9 1\n`);
      await assert.rejects(readTcpTable(file), { code: 'LG_DOCTOR_PARSE', message: new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: bad port`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the streaming reader, both byte orders in one process', () => {
  it('decodes one IPv4 word by the order asked for, whatever it decoded before', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-scan-'));
    try {
      const file = path.join(dir, 'tcp');
      writeFileSync(file, `${row(0, '0100007F', 80, '0A000001', 81, 1, 7)}\n`);
      assert.equal((await readTcpTable(file, { endianness: 'LE' }))[0]?.local.address, '127.0.0.1');
      assert.equal((await readTcpTable(file, { endianness: 'BE' }))[0]?.local.address, '1.0.0.127');
      assert.equal((await readTcpTable(file, { endianness: 'LE' }))[0]?.remote.address, '1.0.0.10');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
