import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readProcessSockets, snapshotProcess, type TcpSocket } from '../../src/doctor/index.js';
import { besideRows, failure, parseLinks } from '../../src/doctor/links.js';
import { InvalidOptionError } from '../../src/pool/errors.js';
import { loopbackSockets } from '../support/sockets.js';
import { gnuReadlink } from '../support/tools.js';

// The descriptors read by coreutils' readlink in a child process while the tables are read here: the same
// sockets as reading them here, and every way readlink can fail handing the work back.
const exit = (code: number | null, stderr = '', failed: string | null = null, signal: string | null = null): Parameters<typeof failure>[0] => ({ code, signal, stderr, failed });

describe('failure: when readlink\'s answer can be used', () => {
  it('takes exit 0, and exit 1 when every failed link is a descriptor closed meanwhile', () => {
    assert.equal(failure(exit(0)), null);
    assert.equal(failure(exit(1, 'readlink: 7: No such file or directory\nreadlink: 9: No such file or directory\n')), null);
  });

  it('refuses any other failure, saying which', () => {
    assert.equal(failure(exit(1, 'readlink: 7: No such file or directory\nreadlink: 8: Permission denied\n')), 'exited with 1: readlink: 8: Permission denied');
    assert.equal(failure(exit(1, 'readlink: invalid option -- \'z\'\nBusyBox v1.36.1 multi-call binary.\n')), 'exited with 1: readlink: invalid option -- \'z\'');
    assert.equal(failure(exit(1)), 'exited with 1');
    assert.equal(failure(exit(2, 'sh: 1: cd: can\'t cd to /proc/9/fd\n')), 'exited with 2: sh: 1: cd: can\'t cd to /proc/9/fd');
    assert.equal(failure(exit(126, 'sh: 1: exec: readlink: Argument list too long\n')), 'exited with 126: sh: 1: exec: readlink: Argument list too long');
    assert.equal(failure(exit(null, '', 'not found')), 'not found');
    assert.equal(failure(exit(null, '', null, 'SIGKILL')), 'exited with SIGKILL');
  });

  it('does not judge a last line cut where stderr stopped being kept', () => {
    assert.equal(failure(exit(1, 'readlink: 7: No such file or directory\nreadlink: 8: No such fi')), null);
    assert.equal(failure(exit(1, 'readlink: 7: Permission denied\nreadlink: 8: No such fi')), 'exited with 1: readlink: 7: Permission denied');
  });
});

describe('parseLinks: readlink -z\'s output', () => {
  const withOutput = (links: readonly string[], run: (fd: number) => void): void => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-links-'));
    const fd = openSync(path.join(dir, 'out'), 'w+');
    try {
      writeSync(fd, Buffer.from(links.join('\0'), 'latin1'));
      run(fd);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('counts every descriptor and keeps the socket inodes, whatever the other links hold', () => {
    withOutput(['socket:[93121]', 'pipe:[5]', '/dev/null', 'anon_inode:[eventpoll]', '/tmp/a\nsocket:[1]', 'socket:[x]', 'socket:[]', 'socket:[4294967297]', ''], (fd) => {
      const { open, inodes } = parseLinks({ fd });
      assert.equal(open, 8);
      assert.deepEqual([...inodes].sort((a, b) => a[0] - b[0]), [[93121, -1], [4294967297, -1]]);
    });
  });

  it('reads output larger than its buffer, links split across reads', () => {
    const links = Array.from({ length: 30_000 }, (_, i) => (i % 3 === 0 ? `/var/lib/app/data-${i}.db` : `socket:[${1_000_000 + i}]`));
    withOutput([...links, ''], (fd) => {
      const { open, inodes } = parseLinks({ fd });
      assert.equal(open, 30_000);
      assert.equal(inodes.size, 20_000);
      assert.ok(inodes.has(1_000_001) && inodes.has(1_029_999) && !inodes.has(1_000_000));
    });
  });

  it('refuses output whose last link is not NUL-terminated (readlink cut short)', () => {
    withOutput(['socket:[1]', 'socket:[2'], (fd) => {
      assert.throws(() => parseLinks({ fd }), /not NUL-terminated/);
    });
  });
});

describe('besideRows: the rows read while readlink runs', () => {
  it('keeps every row until the answer is in, then drops those of other processes at once', () => {
    const row = (inode: number): TcpSocket => ({ inode, family: 4, local: { address: '127.0.0.1', port: 1 }, remote: { address: '127.0.0.1', port: 2 }, state: 'ESTABLISHED', txQueue: 0, rxQueue: 0, uid: 0 });
    const links: { inodes: Map<number, number> | null } = { inodes: null };
    const { rows, onRow } = besideRows(links);
    for (const inode of [1, 2, 3, 4]) onRow(row(inode));
    assert.deepEqual(rows.map((r) => r.inode), [1, 2, 3, 4]);
    links.inodes = new Map([[2, -1], [4, -1], [9, -1]]);
    onRow(row(5));
    assert.deepEqual(rows.map((r) => r.inode), [2, 4, 5], 'the earlier rows of other processes are dropped; later rows are the reader\'s to select');
    onRow(row(9));
    assert.deepEqual(rows.map((r) => r.inode), [2, 4, 5, 9]);
  });
});

const byInode = (rows: readonly TcpSocket[]): [number, TcpSocket][] => rows.map((row): [number, TcpSocket] => [row.inode, row]).sort((a, b) => a[0] - b[0]);

describe('fdReader readlink, live', { skip: gnuReadlink ? false : 'needs Linux and GNU readlink (coreutils)' }, () => {
  it('rejects an unknown reader, naming the option', async () => {
    await assert.rejects(readProcessSockets(process.pid, { fdReader: 'thread' as never }), (error: unknown) => error instanceof InvalidOptionError && /invalid option "fdReader": expected "inline" or "readlink", got the string "thread"/.test(error.message));
  });

  it('gives the same sockets as reading the descriptors here, says so, and leaves no child or descriptor', async () => {
    const loopback = loopbackSockets({ allowHalfOpen: true }, true);
    const { listen, connect } = loopback;
    try {
      const v4 = await listen('127.0.0.1');
      const v6 = await listen('::1');
      for (let i = 0; i < 20; i++) await connect(i % 2 === 0 ? '127.0.0.1' : '::1', i % 2 === 0 ? v4 : v6);
      (await connect('127.0.0.1', v4)).end();
      const fdsBefore = readdirSync('/proc/self/fd').length;
      const wrapsBefore = childWraps();
      let inline: [number, TcpSocket][] = [];
      let beside: [number, TcpSocket][] = [];
      // Read until two reads agree: a connection may change state between them.
      for (let attempt = 0; attempt < 20; attempt++) {
        inline = byInode(await readProcessSockets(process.pid, { fdReader: 'inline' }));
        beside = byInode(await readProcessSockets(process.pid, { fdReader: 'readlink' }));
        if (beside.some(([, row]) => row.state === 'CLOSE_WAIT') && JSON.stringify(inline) === JSON.stringify(beside)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(beside.length >= 42, `${beside.length} sockets`);
      assert.deepEqual(beside, inline);
      const snapshot = await snapshotProcess(process.pid, { fdReader: 'readlink' });
      assert.equal(snapshot.source, '/proc/PID/net/tcp,tcp6 (streamed) + /proc/PID/fd (readlink, beside)');
      assert.ok(snapshot.fds.open >= 42);
      assert.equal(readdirSync('/proc/self/fd').length, fdsBefore, 'the output file and the child\'s pipes are closed');
      assert.deepEqual(childWraps(), wrapsBefore, 'no child process handle or pipe left');
    } finally {
      await loopback.close();
    }
  });

  it('reads the descriptors here when readlink cannot be used, and says why', async () => {
    // A busybox-like readlink: no -z.
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-fake-readlink-'));
    writeFileSync(path.join(dir, 'readlink'), '#!/bin/sh\necho "readlink: unrecognized option: z" >&2\nexit 1\n');
    chmodSync(path.join(dir, 'readlink'), 0o755);
    const saved = process.env['PATH'];
    const loopback = loopbackSockets();
    try {
      await connect(loopback);
      const inline = byInode(await readProcessSockets(process.pid, { fdReader: 'inline' }));
      process.env['PATH'] = dir;
      const snapshot = await snapshotProcess(process.pid, { fdReader: 'readlink' });
      process.env['PATH'] = saved;
      assert.equal(snapshot.source, '/proc/PID/net/tcp,tcp6 (streamed) + /proc/PID/fd (not readlink: readlink: exited with 1: readlink: unrecognized option: z)');
      assert.deepEqual(byInode(snapshot.sockets).map(([inode]) => inode), inline.map(([inode]) => inode));
    } finally {
      process.env['PATH'] = saved;
      await loopback.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says a process is gone as reading here does (LG_DOCTOR_NO_PROCESS)', async () => {
    await assert.rejects(snapshotProcess(2 ** 22 + 1, { fdReader: 'readlink' }), { code: 'LG_DOCTOR_NO_PROCESS' });
  });
});

function childWraps(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap' || r === 'PipeWrap');
}

async function connect(loopback: ReturnType<typeof loopbackSockets>): Promise<void> {
  const port = await loopback.listen('127.0.0.1');
  for (let i = 0; i < 5; i++) await loopback.connect('127.0.0.1', port);
}
