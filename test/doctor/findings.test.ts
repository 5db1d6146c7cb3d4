import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  buildReport, DoctorErrorCodes, FindingCodes, renderLine, renderText, resolveThresholds, Sampler, series, type DiagnosisReport, type Sample,
  type TcpSocket, type TcpState,
} from '../../src/doctor/index.js';
import { InvalidOptionError } from '../../src/pool/errors.js';

/** Sockets and samples made by hand: the sampler's timing logic runs on `takenAt`, no clock or sleep involved. */
let nextInode = 100;
function sock(state: TcpState, remote: string, remotePort: number, options: { inode?: number; localPort?: number; local?: string } = {}): TcpSocket {
  return {
    inode: options.inode ?? nextInode++,
    family: remote.includes(':') ? 6 : 4,
    local: { address: options.local ?? '127.0.0.1', port: options.localPort ?? 40000 + nextInode },
    remote: { address: remote, port: remotePort },
    state,
    txQueue: 0,
    rxQueue: 0,
    uid: 0,
  };
}

function sample(takenAt: number, sockets: TcpSocket[], extra: { threads?: number; open?: number; limit?: number; handles?: Record<string, number> | null } = {}): Sample {
  return {
    pid: 4242,
    takenAt,
    sockets,
    fds: { open: extra.open ?? 20, limit: extra.limit ?? 1024, hardLimit: 4096 },
    threads: extra.threads ?? 7,
    handles: extra.handles === undefined ? null : extra.handles,
  };
}

function report(samples: readonly Sample[], thresholds = {}, window = 10): DiagnosisReport {
  const sampler = new Sampler(window);
  for (const s of samples) sampler.add(s);
  return buildReport(sampler, resolveThresholds(thresholds), null);
}

const T0 = Date.parse('2026-11-21T12:00:00Z');

describe('Sampler: CLOSE_WAIT ages by sampling', () => {
  it('ages a socket from the first sample that saw it in its state, and restarts when the state changes', () => {
    const a = sock('ESTABLISHED', '10.0.0.10', 5432, { inode: 1 });
    const aClosing = { ...a, state: 'CLOSE_WAIT' as const };
    const b = sock('CLOSE_WAIT', '10.0.0.10', 5432, { inode: 2 });
    const sampler = new Sampler(3);
    sampler.add(sample(T0, [a, b]));
    sampler.add(sample(T0 + 1000, [aClosing, b]));
    sampler.add(sample(T0 + 5000, [aClosing, b]));
    const seen = new Map(sampler.sockets().map((s) => [s.socket.inode, s]));
    assert.equal(seen.get(1)?.inStateMs, 4000);
    assert.equal(seen.get(1)?.firstSeenAt, T0 + 1000);
    assert.equal(seen.get(2)?.inStateMs, 5000);
  });

  it('keeps first-seen times beyond the trend window, and forgets sockets that went away', () => {
    const old = sock('CLOSE_WAIT', '10.0.0.10', 5432, { inode: 7 });
    const sampler = new Sampler(2);
    sampler.add(sample(T0, [old]));
    sampler.add(sample(T0 + 1000, [old]));
    sampler.add(sample(T0 + 2000, [old]));
    assert.equal(sampler.samples.length, 2);
    assert.equal(sampler.sockets()[0]?.inStateMs, 2000);
    sampler.add(sample(T0 + 3000, []));
    sampler.add(sample(T0 + 4000, [old])); // same inode again: a new socket as far as anyone can tell
    assert.equal(sampler.sockets()[0]?.inStateMs, 0);
  });

  it('rejects samples out of time order or of another process', () => {
    const sampler = new Sampler(3);
    sampler.add(sample(T0 + 1000, []));
    assert.throws(() => { sampler.add(sample(T0, [])); }, /time order/);
    assert.throws(() => { sampler.add({ ...sample(T0 + 2000, []), pid: 1 }); }, /pid 1 after samples of pid 4242/);
  });
});

describe('Sampler: groups and trends', () => {
  it('groups by peer and state, IPv4-mapped with IPv4, inbound connections by listener', () => {
    const listener = sock('LISTEN', '0.0.0.0', 0, { localPort: 8080 });
    const sockets = [
      listener,
      sock('ESTABLISHED', '127.0.0.1', 50001, { localPort: 8080 }),
      sock('ESTABLISHED', '::ffff:127.0.0.2', 50002, { localPort: 8080, local: '::ffff:127.0.0.1' }),
      sock('CLOSE_WAIT', '10.0.0.10', 5432),
      sock('CLOSE_WAIT', '::ffff:10.0.0.10', 5432, { local: '::ffff:192.168.1.5' }),
      sock('ESTABLISHED', '10.0.0.10', 5432),
    ];
    const sampler = new Sampler(3);
    sampler.add(sample(T0, sockets));
    assert.deepEqual(sampler.groups().map((g) => `${g.peer} ${g.state} ${g.count}`), [
      '10.0.0.10:5432 CLOSE_WAIT 2',
      'inbound :8080 ESTABLISHED 2',
      '10.0.0.10:5432 ESTABLISHED 1',
      'listen 127.0.0.1:8080 LISTEN 1',
    ]);
  });

  it('tracks each group\'s count across the window, zero where a group was absent', () => {
    const r = report([
      sample(T0, [sock('ESTABLISHED', '10.0.0.10', 5432)]),
      sample(T0 + 1000, [sock('ESTABLISHED', '10.0.0.10', 5432), sock('CLOSE_WAIT', '10.0.0.10', 5432)]),
      sample(T0 + 2000, [sock('CLOSE_WAIT', '10.0.0.10', 5432), sock('CLOSE_WAIT', '10.0.0.10', 5432)]),
    ]);
    assert.deepEqual(r.groups.map((g) => [g.state, g.trend]), [['CLOSE_WAIT', [0, 1, 2]], ['ESTABLISHED', [1, 1, 0]]]);
  });

  it('calls a series rising only when it never fell and ended higher', () => {
    assert.deepEqual(series([1, 2, 2, 5]), { values: [1, 2, 2, 5], change: 4, rising: true });
    assert.equal(series([1, 3, 2, 5]).rising, false);
    assert.equal(series([4, 4, 4]).rising, false);
    assert.equal(series([4]).rising, false);
  });
});

function closeWaits(n: number): TcpSocket[] {
  return Array.from({ length: n }, (_, i) => sock('CLOSE_WAIT', '10.0.0.10', 5432, { inode: 5000 + i }));
}

describe('findings', () => {
  it('LG_DOCTOR_CLOSE_WAIT: info for a few young sockets, warning by count or by age, critical by count', () => {
    const few = report([sample(T0, closeWaits(2))]);
    assert.deepEqual(few.findings.map((f) => [f.code, f.severity, f.data['count']]), [['LG_DOCTOR_CLOSE_WAIT', 'info', 2]]);
    assert.equal(report([sample(T0, closeWaits(5))]).findings[0]?.severity, 'warning');
    const aged = report([sample(T0, closeWaits(2)), sample(T0 + 30_000, closeWaits(2))]);
    assert.equal(aged.findings[0]?.severity, 'warning');
    assert.equal(aged.findings[0]?.data['oldestMs'], 30_000);
    assert.match(aged.findings[0].title, /^2 sockets in CLOSE_WAIT \(oldest seen for 30 s; 2 to 10\.0\.0\.10:5432\)$/);
    assert.equal(report([sample(T0, closeWaits(50))]).findings[0]?.severity, 'critical');
    assert.equal(report([sample(T0, closeWaits(3))], { closeWaitWarning: 2, closeWaitCritical: 3 }).findings[0]?.severity, 'critical');
    assert.deepEqual(report([sample(T0, [sock('ESTABLISHED', '10.0.0.10', 5432)])]).findings, []);
  });

  it('LG_DOCTOR_REMOTE_GROWTH: a peer whose connections rise in every sample', () => {
    const conns = (n: number): TcpSocket[] => Array.from({ length: n }, (_, i) => sock('ESTABLISHED', '10.0.0.20', 443, { inode: 6000 + i }));
    const grew = report([sample(T0, conns(2)), sample(T0 + 1000, conns(5)), sample(T0 + 2000, conns(8))]);
    assert.deepEqual(grew.findings.map((f) => [f.code, f.severity, f.data['peer'], f.data['values']]), [['LG_DOCTOR_REMOTE_GROWTH', 'warning', '10.0.0.20:443', [2, 5, 8]]]);
    // Up and down is a busy peer, not a leak; a rise below the threshold is noise.
    assert.deepEqual(report([sample(T0, conns(2)), sample(T0 + 1000, conns(9)), sample(T0 + 2000, conns(8))]).findings, []);
    assert.deepEqual(report([sample(T0, conns(2)), sample(T0 + 1000, conns(6))]).findings, []);
  });

  it('LG_DOCTOR_FD_LIMIT: warning from 80% of the soft limit, critical from 95%, nothing when unlimited', () => {
    const at = (open: number, limit = 1000): string[] => report([sample(T0, [], { open, limit })]).findings.map((f) => `${f.code}:${f.severity}`);
    assert.deepEqual(at(799), []);
    assert.deepEqual(at(800), ['LG_DOCTOR_FD_LIMIT:warning']);
    assert.deepEqual(at(950), ['LG_DOCTOR_FD_LIMIT:critical']);
    assert.deepEqual(at(10_000, Infinity), []);
    assert.deepEqual(report([sample(T0, [], { open: 600, limit: 1000 })], { fdWarningRatio: 0.5 }).findings.map((f) => f.code), ['LG_DOCTOR_FD_LIMIT']);
  });

  it('LG_DOCTOR_THREAD_GROWTH and LG_DOCTOR_HANDLE_GROWTH: counts that only go up', () => {
    const threads = report([sample(T0, [], { threads: 7 }), sample(T0 + 1000, [], { threads: 9 }), sample(T0 + 2000, [], { threads: 11 })]);
    assert.deepEqual(threads.findings.map((f) => [f.code, f.data['values']]), [['LG_DOCTOR_THREAD_GROWTH', [7, 9, 11]]]);
    const handles = report([
      sample(T0, [], { handles: { Timeout: 2, TCPSocketWrap: 3 } }),
      sample(T0 + 1000, [], { handles: { Timeout: 8, TCPSocketWrap: 1 } }),
      sample(T0 + 2000, [], { handles: { Timeout: 14, TCPSocketWrap: 30 } }),
    ]);
    assert.deepEqual(handles.findings.map((f) => [f.code, f.data['type'], f.data['values']]), [['LG_DOCTOR_HANDLE_GROWTH', 'Timeout', [2, 8, 14]]]);
    assert.deepEqual(handles.handles, { TCPSocketWrap: { count: 30, trend: [3, 1, 30] }, Timeout: { count: 14, trend: [2, 8, 14] } });
  });

  it('orders findings most severe first and explains each with a documented code', () => {
    const r = report([sample(T0, closeWaits(1), { open: 990, limit: 1000 })]);
    assert.deepEqual(r.findings.map((f) => f.severity), ['critical', 'info']);
    for (const f of r.findings) {
      assert.equal(f.docs, `docs/diagnostics/${f.code}.md`);
      assert.ok(f.explanation.length > 20 && f.cause.length > 20 && f.fix.length > 20);
    }
    assert.deepEqual(Object.values(FindingCodes).sort(), ['LG_DOCTOR_CLOSE_WAIT', 'LG_DOCTOR_FD_LIMIT', 'LG_DOCTOR_HANDLE_GROWTH', 'LG_DOCTOR_LEASE_HELD', 'LG_DOCTOR_REMOTE_GROWTH', 'LG_DOCTOR_THREAD_GROWTH']);
  });

  it('validates thresholds: unknown keys, wrong types, impossible combinations', () => {
    assert.throws(() => resolveThresholds({ closeWait: 3 } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'closeWait');
    assert.throws(() => resolveThresholds({ closeWaitWarning: 0 }), /invalid option "closeWaitWarning": expected an integer >= 1, got number 0/);
    assert.throws(() => resolveThresholds({ closeWaitWarning: 10, closeWaitCritical: 5 }), /closeWaitCritical.*must be >= closeWaitWarning \(10\)/);
    assert.throws(() => resolveThresholds({ fdWarningRatio: 0.9, fdCriticalRatio: 0.5 }), /fdWarningRatio <= fdCriticalRatio/);
    assert.equal(resolveThresholds({ closeWaitWarning: 80 }).closeWaitCritical, 80);
  });
});

describe('report rendering', () => {
  const r = report([sample(T0, closeWaits(2)), sample(T0 + 95_000, closeWaits(3), { threads: 7 })]);

  it('says how ages were measured, in text and in JSON', () => {
    assert.match(r.note, /measured by sampling.*2 samples over 95 s/);
    const text = renderText(r);
    assert.match(text, /^lifeguard doctor: process 4242 at 2026-11-21T12:01:35\.000Z, 2 samples over 95 s$/m);
    assert.match(text, /^ {2}WARNING LG_DOCTOR_CLOSE_WAIT: 3 sockets in CLOSE_WAIT \(oldest seen for 95 s; 3 to 10\.0\.0\.10:5432\)$/m);
    assert.match(text, /^ {2}10\.0\.0\.10:5432 {2}CLOSE_WAIT {2}3 \(2 -> 3, up\)$/m);
    assert.match(text, /^File descriptors: 20 of 1024, 2\.0% \(20 -> 20, flat\)$/m);
    assert.match(text, /^Note: socket ages are measured by sampling/m);
    const json = JSON.parse(JSON.stringify(r)) as DiagnosisReport;
    assert.equal(json.sockets.length, 3);
    assert.equal(json.sockets[0]?.inStateMs, 95_000);
    assert.equal(json.sockets[0]?.firstSeenAt, '2026-11-21T12:00:00.000Z');
    assert.equal('owner' in json.sockets[0], false);
  });

  it('has a one-line form for logs', () => {
    assert.equal(renderLine(r), '2026-11-21T12:01:35.000Z pid=4242 sockets=3 CLOSE_WAIT=3 fds=20/1024 threads=7 findings=LG_DOCTOR_CLOSE_WAIT(warning)');
  });
});

describe('documentation', () => {
  const root = new URL('../../../', import.meta.url);
  it('has a page for every finding and error code, and documents every threshold', () => {
    for (const code of [...Object.values(FindingCodes), ...Object.values(DoctorErrorCodes)]) {
      const page = readFileSync(new URL(`docs/diagnostics/${code}.md`, root), 'utf8');
      assert.match(page, new RegExp(`^# ${code}: `), code);
      assert.match(page, /^## Fix$/m, code);
    }
    const guide = readFileSync(new URL('docs/doctor.md', root), 'utf8');
    for (const key of Object.keys(resolveThresholds({}))) assert.ok(guide.includes(`| \`${key}\` |`), key);
    for (const code of [...Object.values(FindingCodes), ...Object.values(DoctorErrorCodes)]) assert.ok(guide.includes(code), code);
  });
});
