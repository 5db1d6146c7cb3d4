import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { readProcessSockets, snapshotProcess, type TcpSocket } from '../../src/doctor/index.js';
import { RowError } from '../../src/doctor/scan.js';
import { parseSsRow, ssText } from '../../src/doctor/ss.js';
import { InvalidOptionError } from '../../src/pool/errors.js';
import { loopbackSockets } from '../support/sockets.js';
import { readerNote } from '../support/tools.js';

// The netlink source (`ss -tanHe` beside the descriptor reads) against the /proc tables: the same sockets
// from both, and ss's text forms (brackets, wildcards, interfaces, uid left out when 0) read as /proc's.
const fixtures = fileURLToPath(new URL('../../../test/fixtures/proc/', import.meta.url));
const hasSs = process.platform === 'linux' && spawnSync('ss', ['-V']).status === 0;

function parse(line: string, keep: ((inode: number) => boolean) | null = null): TcpSocket | null {
  const buf = Buffer.from(line, 'latin1');
  return parseSsRow(buf, 0, buf.length, keep);
}

describe('parseSsRow: the lines of ss -tanHe', () => {
  it('reads an IPv4 connection with its queues, uid and inode', () => {
    assert.deepEqual(parse('ESTAB     12     34     10.1.2.3:51234  10.0.0.5:5432  uid:1000 ino:93121 sk:1 cgroup:/ <->'), {
      inode: 93121, family: 4, local: { address: '10.1.2.3', port: 51234 }, remote: { address: '10.0.0.5', port: 5432 },
      state: 'ESTABLISHED', txQueue: 34, rxQueue: 12, uid: 1000,
    });
  });

  it('reads uid 0 when ss leaves it out, and a listener\'s Send-Q (its backlog size) as /proc\'s 0', () => {
    assert.deepEqual(parse('LISTEN 3 511 127.0.0.1:8080 0.0.0.0:* ino:7375 sk:4e17 cgroup:/ <->'), {
      inode: 7375, family: 4, local: { address: '127.0.0.1', port: 8080 }, remote: { address: '0.0.0.0', port: 0 },
      state: 'LISTEN', txQueue: 0, rxQueue: 3, uid: 0,
    });
  });

  it('reads IPv6 in brackets, IPv4-mapped, the dual-stack wildcard "*" and an interface name, as Node prints them', () => {
    const v6 = parse('CLOSE-WAIT 1 0 [2001:DB8:0:0:0:0:0:1]:443 [::ffff:127.0.0.1]:40000 uid:5 ino:12 sk:2 v6only:0 <->');
    assert.deepEqual([v6?.family, v6?.state, v6?.local, v6?.remote], [6, 'CLOSE_WAIT', { address: '2001:db8::1', port: 443 }, { address: '::ffff:127.0.0.1', port: 40000 }]);
    const dual = parse('LISTEN 0 4096 *:9464 *:* ino:13 sk:3 cgroup:/ v6only:0 <->');
    assert.deepEqual([dual?.family, dual?.local, dual?.remote], [6, { address: '::', port: 9464 }, { address: '::', port: 0 }]);
    const scoped = parse('ESTAB 0 0 127.0.0.1%lo:5432 127.0.0.1:41000 ino:14 sk:4 <->');
    assert.deepEqual(scoped?.local, { address: '127.0.0.1', port: 5432 });
    const v6Scoped = parse('ESTAB 0 0 [fe80::1]%eth0:22 [fe80::2]%eth0:50000 ino:15 sk:5 <->');
    assert.deepEqual([v6Scoped?.local, v6Scoped?.remote], [{ address: 'fe80::1', port: 22 }, { address: 'fe80::2', port: 50000 }]);
  });

  it('maps every state name ss prints', () => {
    const names = {
      ESTAB: 'ESTABLISHED', 'SYN-SENT': 'SYN_SENT', 'SYN-RECV': 'SYN_RECV', 'FIN-WAIT-1': 'FIN_WAIT1', 'FIN-WAIT-2': 'FIN_WAIT2',
      'TIME-WAIT': 'TIME_WAIT', UNCONN: 'CLOSE', 'CLOSE-WAIT': 'CLOSE_WAIT', 'LAST-ACK': 'LAST_ACK', LISTEN: 'LISTEN', CLOSING: 'CLOSING', UNKNOWN: 'UNKNOWN',
    };
    for (const [name, state] of Object.entries(names)) assert.equal(parse(`${name} 0 0 127.0.0.1:1 127.0.0.1:2 ino:9 sk:1 <->`)?.state, state, name);
  });

  it('reads a line as parseSsRow does on the fast path of streamed output (IPv4, uid or not, any state, * ports), and hands any other line to it', () => {
    const dotted = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map((p) => p.join('.'));
    const port = fc.oneof(fc.integer({ min: 0, max: 65535 }).map(String), fc.constant('*'));
    const v4Line = fc.record({
      state: fc.constantFrom('ESTAB', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'UNCONN', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING'),
      recvQ: fc.integer({ min: 0, max: 2 ** 31 }), sendQ: fc.integer({ min: 0, max: 2 ** 31 }),
      local: dotted, lport: port, peer: dotted, pport: port,
      uid: fc.option(fc.integer({ min: 1, max: 2 ** 31 })), inode: fc.integer({ min: 0, max: 2 ** 32 }),
      pad: fc.integer({ min: 1, max: 6 }),
    }).map((l) => [l.state, String(l.recvQ), String(l.sendQ), `${l.local}:${l.lport}`, `${l.peer}:${l.pport}`, ...(l.uid === null ? [] : [`uid:${l.uid}`]), `ino:${l.inode}`, 'sk:1f cgroup:/ <->'].join(' '.repeat(l.pad)));
    const otherLine = fc.constantFrom(
      'ESTAB 0 0 [::1]:5432 [::1]:40001 ino:77 sk:2 cgroup:/ <->',
      'LISTEN 0 511 *:8080 *:* ino:78 sk:3 cgroup:/ v6only:0 <->',
      'ESTAB 0 0 [::ffff:127.0.0.1]:80 [::ffff:127.0.0.1]:5000 uid:7 ino:79 sk:4 <->',
      'LISTEN 0 128 127.0.0.53%lo:53 0.0.0.0:* uid:101 ino:80 sk:5 <->',
    );
    fc.assert(fc.property(fc.array(fc.oneof(v4Line, otherLine), { maxLength: 30 }), (lines) => {
      const expected: TcpSocket[] = [];
      for (const line of lines) {
        const row = parse(line, (inode) => inode !== 0);
        if (row !== null) expected.push(row);
      }
      const got: TcpSocket[] = [];
      const text = lines.map((line) => `${line}\n`).join('');
      assert.equal(ssText(text, text.length, 0, (inode) => inode !== 0, (row) => { got.push(row); }), lines.length);
      assert.deepEqual(got, expected);
    }), { numRuns: 200 });
  });

  it('reads uid: however many spaces surround it (regression: one space after the peer, or two before ino:, read it as 0)', () => {
    assert.equal(parse('ESTAB 0 0 0.0.0.0:* 0.0.0.0:0 uid:1 ino:1 sk:1f cgroup:/ <->')?.uid, 1);
    assert.equal(parse('ESTAB  0  0  0.0.0.0:*  0.0.0.0:0  uid:1  ino:1  sk:1f cgroup:/ <->')?.uid, 1);
    assert.equal(parse('ESTAB 0 0 [::1]:5 [::1]:6 uid:1000 ino:9 sk:1f <->')?.uid, 1000);
    assert.equal(parse('ESTAB 0 0 [::1]:5 [::1]:6 ino:9 sk:1f <->')?.uid, 0);
  });

  it('names the line of streamed output it cannot read', () => {
    const text = 'ESTAB 0 0 10.0.0.1:1 10.0.0.2:2 ino:5 sk:1 <->\nBOGUS 0 0 10.0.0.1:1 10.0.0.2:2 ino:6 sk:1 <->\n';
    assert.throws(() => ssText(text, text.length, 40, () => true, () => {}), (error: unknown) => error instanceof RowError && /output:42: unknown state: "BOGUS/.test(error.message));
  });

  it('skips a row of another process on its inode alone', () => {
    assert.equal(parse('ESTAB 0 0 not-even-an-address ino:77 sk:1', (inode) => inode !== 77), null);
  });

  it('throws a RowError for what it cannot read', () => {
    for (const line of [
      'ESTAB 0 0 127.0.0.1:1 127.0.0.1:2 sk:1', // no ino: (ss without -e)
      'WEIRD 0 0 127.0.0.1:1 127.0.0.1:2 ino:1',
      'ESTAB 0 0 127.0.0.1:1 ino:1',
      'ESTAB 0 0 127.0.0.300:1 127.0.0.1:2 ino:1',
      'ESTAB 0 0 127.0.0.1:99999 127.0.0.1:2 ino:1',
      'ESTAB x 0 127.0.0.1:1 127.0.0.1:2 ino:1',
      'ESTAB 0 0 [zz::1]:1 127.0.0.1:2 ino:1',
    ]) assert.throws(() => parse(line), RowError, line);
  });
});

describe('the socket source option', () => {
  it('rejects an unknown source, and ss with a saved copy of /proc, naming the option', async () => {
    await assert.rejects(readProcessSockets(4242, { procRoot: fixtures, source: 'netlink' as never }), (error: unknown) => error instanceof InvalidOptionError && /"source".*"auto", "procfs" or "ss".*netlink/.test(error.message));
    await assert.rejects(snapshotProcess(4242, { procRoot: fixtures, source: 'ss' }), (error: unknown) => error instanceof InvalidOptionError && /"source": "ss" reads the live kernel/.test(error.message));
  });

  it('auto and the readlink reader read a saved copy from its tables here, and say why not ss or readlink', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'lifeguard-ss-'));
    try {
      cpSync(path.join(fixtures, '4242'), path.join(root, '4242'), { recursive: true });
      mkdirSync(path.join(root, '4242', 'fd'));
      symlinkSync('socket:[1002]', path.join(root, '4242', 'fd', '3'));
      const tables = `${root}/PID/net/tcp,tcp6 (streamed) + ${root}/PID/fd`;
      for (const [options, source] of [
        [{ source: 'auto' }, `${tables} (not ss: procRoot is a copy)`],
        [{ fdReader: 'readlink' }, `${tables} (not readlink: procRoot is a copy)`],
        [{ source: 'auto', fdReader: 'readlink' }, `${tables} (not readlink: procRoot is a copy) (not ss: procRoot is a copy)`],
      ] as const) {
        const snapshot = await snapshotProcess(4242, { procRoot: root, endianness: 'LE', ...options });
        assert.equal(snapshot.source, source);
        assert.deepEqual(snapshot.sockets.map((socket) => socket.inode), [1002]);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('ss and the /proc tables, live', { skip: hasSs ? false : 'needs Linux and ss (iproute2)' }, () => {
  it('give the same sockets of this process, over IPv4, IPv6, IPv4-mapped and in CLOSE_WAIT, and say which was read', async () => {
    // allowHalfOpen: a peer's end leaves the accepted socket in CLOSE_WAIT instead of closing it.
    const loopback = loopbackSockets({ allowHalfOpen: true }, true);
    const { listen, connect } = loopback;
    try {
      const v4 = await listen('127.0.0.1');
      const v6 = await listen('::1');
      const dual = await listen('::');
      await connect('127.0.0.1', v4);
      await connect('::1', v6);
      await connect('127.0.0.1', dual);
      // The peer hangs up and this side never closes: CLOSE_WAIT on the accepting side.
      (await connect('127.0.0.1', v4)).end();
      const byInode = (rows: readonly TcpSocket[]): Map<number, TcpSocket> => new Map(rows.map((row) => [row.inode, row]));
      // Both read twice, until two reads agree: a connection may change state between the two reads.
      let procfs = new Map<number, TcpSocket>();
      let ss = new Map<number, TcpSocket>();
      let streamed = new Map<number, TcpSocket>();
      const same = (a: Map<number, TcpSocket>, b: Map<number, TcpSocket>): boolean => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
      for (let attempt = 0; attempt < 20; attempt++) {
        procfs = byInode(await readProcessSockets(process.pid, { source: 'procfs' }));
        ss = byInode(await readProcessSockets(process.pid, { source: 'ss' }));
        // ss's output parsed as it prints it, the descriptors read by readlink meanwhile.
        streamed = byInode(await readProcessSockets(process.pid, { source: 'ss', fdReader: 'readlink' }));
        if ([...procfs.values()].some((row) => row.state === 'CLOSE_WAIT') && same(procfs, ss) && same(procfs, streamed)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok([...procfs.values()].some((row) => row.state === 'CLOSE_WAIT'), 'a CLOSE_WAIT socket');
      assert.ok(procfs.size >= 10, `${procfs.size} sockets`);
      assert.deepEqual(new Map([...ss].sort((a, b) => a[0] - b[0])), new Map([...procfs].sort((a, b) => a[0] - b[0])));
      assert.deepEqual(new Map([...streamed].sort((a, b) => a[0] - b[0])), new Map([...procfs].sort((a, b) => a[0] - b[0])));
      assert.match((await snapshotProcess(process.pid, { source: 'ss', fdReader: 'readlink' })).source ?? '', new RegExp(String.raw`^netlink \(ss -tanHe, streamed\) \+ /proc/PID/fd ${readerNote}$`));
      assert.equal((await snapshotProcess(process.pid, { source: 'ss' })).source, 'netlink (ss -tanHe) + /proc/PID/fd');
      assert.equal((await snapshotProcess(process.pid, { source: 'auto' })).source, 'netlink (ss -tanHe) + /proc/PID/fd');
      assert.equal((await snapshotProcess(process.pid)).source, '/proc/PID/net/tcp,tcp6 (streamed) + /proc/PID/fd');
    } finally {
      await loopback.close();
    }
  });

  it('reads a process in another network namespace from its own tables: ss would read this one\'s', { skip: spawnSync('unshare', ['-n', 'true']).status === 0 ? false : 'needs unshare -n (root)' }, async () => {
    const other = spawn('unshare', ['-n', 'sleep', '30'], { stdio: 'ignore' });
    try {
      // unshare execs sleep in the new namespace: wait until the pid's namespace is no longer this one.
      const deadline = Date.now() + 5000;
      while (readlinkSync(`/proc/${other.pid}/ns/net`) === readlinkSync('/proc/self/ns/net')) {
        assert.ok(Date.now() < deadline, 'unshare did not move to a new network namespace');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await assert.rejects(snapshotProcess(other.pid!, { source: 'ss' }), { code: 'LG_DOCTOR_UNSUPPORTED', message: /in another network namespace/ });
      const snapshot = await snapshotProcess(other.pid!, { source: 'auto' });
      assert.match(snapshot.source ?? '', /^\/proc\/PID\/net\/tcp,tcp6 \(streamed\) \+ \/proc\/PID\/fd \(not ss: process \d+ is in another network namespace/);
    } finally {
      const exited = once(other, 'exit');
      other.kill();
      await exited;
    }
  });

  it('says a process is gone as the tables do (LG_DOCTOR_NO_PROCESS), whatever the source', async () => {
    for (const source of ['ss', 'auto', 'procfs'] as const) await assert.rejects(snapshotProcess(2 ** 22 + 1, { source }), { code: 'LG_DOCTOR_NO_PROCESS' }, source);
  });

  it('without ss: source ss fails with LG_DOCTOR_UNSUPPORTED, auto falls back to the tables and says why', async () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      await assert.rejects(snapshotProcess(process.pid, { source: 'ss' }), { code: 'LG_DOCTOR_UNSUPPORTED', message: /with ss: not found/ });
      const snapshot = await snapshotProcess(process.pid, { source: 'auto' });
      assert.equal(snapshot.source, '/proc/PID/net/tcp,tcp6 (streamed) + /proc/PID/fd (not ss: ss not found)');
    } finally {
      process.env['PATH'] = saved;
    }
  });
});
