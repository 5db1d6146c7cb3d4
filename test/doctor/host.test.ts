import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveThresholds } from '../../src/doctor/findings.js';
import { hostFindings, renderHost, shortCommand, surveyHost, type HostProcess, type HostReport } from '../../src/doctor/host.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/proc/', import.meta.url));

describe('doctor --all table', () => {
  // Regression: the table cut command lines at 60 characters from the start, so a checkout under a long path
  // (CI's /check/work/main/dist/test/cli/close-wait-child.js) lost the script's name, the one thing that names it.
  it('keeps the script name of a command under a long path', () => {
    const cmd = '/usr/bin/node /check/work/main/dist/test/cli/close-wait-child.js 7';
    const short = shortCommand(cmd, 60);
    assert.ok(short.length <= 60, short);
    assert.match(short, /close-wait-child\.js 7$/);
    assert.equal(shortCommand('redis-server 127.0.0.1:6379', 60), 'redis-server 127.0.0.1:6379');
  });

  it('cuts what is still too long in the middle, keeping both ends', () => {
    const cmd = `java ${'-Dx=y '.repeat(30)}Main`;
    const short = shortCommand(cmd, 40);
    assert.equal(short.length, 40);
    assert.ok(short.startsWith('java '));
    assert.ok(short.endsWith(' Main'));
    assert.ok(short.includes('\u2026'));
  });

  it('renders the short command in the ranking row', () => {
    const report: HostReport = {
      takenAt: '2026-12-04T00:00:00.000Z', samples: 1, skipped: 0, source: '/proc',
      processes: [{
        pid: 42, command: '/usr/bin/node /a/very/long/checkout/path/that/goes/on/and/on/dist/app/server-main.js --port 1',
        sockets: 3, byState: {}, closeWait: 2, closeWaitRemotes: [{ remote: '127.0.0.1:80', count: 2 }],
        fds: 10, fdLimit: 1024, fdRatio: 10 / 1024, fdTrend: [10], socketTrend: [3], fdGrowth: 0, socketGrowth: 0, findings: [],
      }],
    };
    assert.match(renderHost(report), /^ +42 +2 .*server-main\.js --port 1 \(2x 127\.0\.0\.1:80\)$/m);
  });

  it('raises the CLOSE_WAIT and descriptor findings --pid would, by the same thresholds, and lists them', () => {
    const base = { pid: 7, command: 'node app.js', sockets: 0, byState: {}, closeWaitRemotes: [], fdLimit: 1000, fdTrend: [], socketTrend: [], fdGrowth: 0, socketGrowth: 0 };
    const p = (closeWait: number, fds: number): Omit<HostProcess, 'findings'> => ({ ...base, closeWait, fds, fdRatio: fds / 1000 });
    const t = resolveThresholds({});
    const of = (closeWait: number, fds: number): string[] => hostFindings(p(closeWait, fds), t).map((f) => `${f.code} ${f.severity}`);
    assert.deepEqual(of(0, 10), []);
    assert.deepEqual(of(1, 10), ['LG_DOCTOR_CLOSE_WAIT info']);
    assert.deepEqual(of(5, 10), ['LG_DOCTOR_CLOSE_WAIT warning']);
    assert.deepEqual(of(50, 10), ['LG_DOCTOR_CLOSE_WAIT critical']);
    assert.deepEqual(of(0, 800), ['LG_DOCTOR_FD_LIMIT warning']);
    assert.deepEqual(of(5, 950), ['LG_DOCTOR_FD_LIMIT critical', 'LG_DOCTOR_CLOSE_WAIT warning']);
    assert.deepEqual(hostFindings({ ...p(0, 5000), fdLimit: null, fdRatio: 0 }, t), []);
    assert.deepEqual(hostFindings(p(3, 10), resolveThresholds({ closeWaitWarning: 2 })).map((f) => f.severity), ['warning']);

    const worst = { ...p(60, 990), findings: hostFindings(p(60, 990), t) };
    const quiet = { ...p(1, 10), pid: 8, findings: hostFindings(p(1, 10), t) };
    const text = renderHost({ takenAt: '2026-12-04T00:00:00.000Z', samples: 1, skipped: 0, source: '/proc', processes: [worst, quiet] });
    assert.match(text, /^Findings: 2 critical, 1 info$/m);
    assert.match(text, /^ {2}CRITICAL LG_DOCTOR_CLOSE_WAIT: pid 7 \(node app\.js\): 60 sockets in CLOSE_WAIT$/m);
    assert.match(text, /^ {2}CRITICAL LG_DOCTOR_FD_LIMIT: pid 7 \(node app\.js\): 990 of 1000 file descriptors open \(99\.0% of the soft limit\)$/m);
    assert.doesNotMatch(text, /INFO/);
    assert.match(renderHost({ takenAt: '2026-12-04T00:00:00.000Z', samples: 1, skipped: 0, source: '/proc', processes: [] }), /^No findings\.$/m);
  });

  // Regression (CI, session 9): `doctor --all` counted 8 CLOSE_WAIT sockets for a process that held 7. The
  // kernel prints /proc/net/tcp a page at a time and resumes by position, so under churn elsewhere in the
  // namespace a row comes out twice; the per-process reader kept one row per inode, the host survey counted
  // every row.
  it('counts a socket the kernel listed twice once, by its latest row', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'lifeguard-host-'));
    try {
      const dir = path.join(root, '4242');
      cpSync(path.join(fixtures, '4242'), dir, { recursive: true });
      mkdirSync(path.join(dir, 'fd'));
      // Inodes 1004 and 1005 are CLOSE_WAIT to 10.0.0.10:5432; 1002 is ESTABLISHED.
      for (const [n, inode] of [[3, 1002], [4, 1004], [5, 1005]] as const) symlinkSync(`socket:[${inode}]`, path.join(dir, 'fd', String(n)));
      writeFileSync(path.join(dir, 'cmdline'), 'node\0app.js\0');
      const table = readFileSync(path.join(fixtures, '4242/net/tcp'), 'utf8').trimEnd().split('\n');
      const row = (inode: number): string => table.find((line) => line.includes(` ${inode} 1 `))!;
      // 1004 twice in CLOSE_WAIT; 1002 once as ESTABLISHED, then again after it moved to CLOSE_WAIT.
      const moved = row(1002).replace(' 01 ', ' 08 ');
      writeFileSync(path.join(dir, 'net', 'tcp'), [...table, row(1004), moved].join('\n') + '\n');
      const host = await surveyHost({ procRoot: root });
      const mine = host.processes.find((p) => p.pid === 4242);
      assert.ok(mine);
      assert.equal(mine.sockets, 3);
      assert.equal(mine.closeWait, 3);
      assert.deepEqual(mine.byState, { CLOSE_WAIT: 3 });
      assert.deepEqual(mine.closeWaitRemotes, [{ remote: '10.0.0.10:5432', count: 2 }, { remote: '127.0.0.1:50000', count: 1 }]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
