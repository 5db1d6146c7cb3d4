import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderHost, shortCommand, type HostReport } from '../../src/doctor/host.js';

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
        fds: 10, fdLimit: 1024, fdRatio: 10 / 1024, fdTrend: [10], socketTrend: [3], fdGrowth: 0, socketGrowth: 0,
      }],
    } as HostReport;
    assert.match(renderHost(report), /^ +42 +2 .*server-main\.js --port 1 \(2x 127\.0\.0\.1:80\)$/m);
  });
});
