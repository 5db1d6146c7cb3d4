import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InvalidOptionError, Pool } from '../../src/index.js';
import { Housekeeper } from '../../src/internal/housekeeper.js';
import { readProcessSockets } from '../../src/doctor/proc.js';
import { AlertMonitor, MetricsCollector, type Alert, type AlertMonitorOptions, type ClearedAlert } from '../../src/metrics/index.js';
import { TestFactory, type TestResource } from '../support/factory.js';
import { activeResources, grown } from '../support/handles.js';
import { FakeClock, flush } from './workload.js';

interface Recorder {
  readonly raised: Alert[];
  readonly cleared: ClearedAlert[];
  readonly lines: Record<string, unknown>[];
}

function monitor(clock: FakeClock, options: AlertMonitorOptions = {}): { monitor: AlertMonitor; seen: Recorder } {
  const seen: Recorder = { raised: [], cleared: [], lines: [] };
  const m = new AlertMonitor({ clock, process: false, intervalMs: 100, log: (line) => seen.lines.push(JSON.parse(line) as Record<string, unknown>), ...options });
  m.on('alert', (a) => seen.raised.push(a));
  m.on('clear', (a) => seen.cleared.push(a));
  return { monitor: m, seen };
}

function pool(clock: FakeClock, options: { max?: number; leakWarnAfterMs?: number; name?: string } = {}): Pool<TestResource> {
  return new Pool<TestResource>({ name: options.name ?? 'db', factory: new TestFactory().basic(), clock, max: options.max ?? 5, leakDetection: 'full', leakWarnAfterMs: options.leakWarnAfterMs ?? 0 });
}

const codes = (alerts: readonly Alert[]): string[] => alerts.map((a) => `${a.code}:${a.subject}`);

describe('AlertMonitor: pool conditions', () => {
  it('raises LG_ALERT_POOL_SATURATED only after usage stayed at 80% for saturatedForMs, and clears it', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { saturatedForMs: 1000 });
    const p = pool(clock);
    try {
      const leases = await Promise.all([1, 2, 3, 4].map(() => p.acquire())); // 4 of 5 = 80%
      await clock.advance(900);
      assert.equal(seen.raised.length, 0, 'not yet: saturated for less than saturatedForMs');
      await clock.advance(200);
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_POOL_SATURATED:db']);
      const alert = seen.raised[0]!;
      assert.equal(alert.severity, 'warning');
      assert.equal(alert.pool, 'db');
      assert.equal(alert.value, 0.8);
      assert.equal(alert.threshold, 0.8);
      assert.match(alert.message, /pool "db" has had 4 of 5 connections in use \(80%, threshold 80%\) for 1 s/);
      assert.deepEqual(codes(m.active()), ['LG_ALERT_POOL_SATURATED:db']);
      assert.equal(seen.lines.length, 1, 'one log line per raise');
      assert.deepEqual({ ...seen.lines[0], msg: undefined }, { level: 'warn', code: 'LG_ALERT_POOL_SATURATED', state: 'raised', severity: 'warning', subject: 'db', value: 0.8, threshold: 0.8, msg: undefined });
      await clock.advance(500);
      assert.equal(seen.raised.length, 1, 'raised once while the condition lasts');
      leases[0]?.release();
      await clock.advance(100);
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_POOL_SATURATED:db']);
      assert.equal(seen.cleared[0]?.activeMs, 600);
      assert.deepEqual(m.active(), []);
      assert.equal(seen.lines.length, 2);
      assert.equal(seen.lines[1]?.['state'], 'cleared');
      for (const l of leases.slice(1)) l.release();
    } finally {
      m.close();
      await p.close();
    }
  });

  it('raises LG_ALERT_POOL_PENDING while more than pendingAbove acquires wait', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { pendingAbove: 1, usageRatio: Infinity });
    const p = pool(clock, { max: 1 });
    try {
      const held = await p.acquire();
      const waiters = [p.acquire(), p.acquire()];
      await clock.advance(100);
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_POOL_PENDING:db']);
      assert.equal(seen.raised[0]?.value, 2);
      assert.match(seen.raised[0]?.message ?? '', /pool "db" has 2 acquires waiting \(threshold 1\); 1 of 1 connections in use/);
      held.release();
      const next = await waiters[0]!;
      await clock.advance(100);
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_POOL_PENDING:db']);
      next.release();
      (await waiters[1]!).release();
    } finally {
      m.close();
      await p.close();
    }
  });

  it('raises LG_ALERT_ACQUIRE_TIMEOUT on any acquire timeout and clears it timeoutWindowMs later', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { timeoutWindowMs: 1000 });
    const p = pool(clock, { max: 1 });
    try {
      const held = await p.acquire();
      const late = p.acquire({ timeoutMs: 50 }).catch((e: unknown) => e);
      await clock.advance(100);
      assert.equal(((await late) as { code: string }).code, 'LG_ACQUIRE_TIMEOUT');
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_ACQUIRE_TIMEOUT:db']);
      assert.equal(seen.raised[0]?.severity, 'critical');
      assert.match(seen.raised[0]?.message ?? '', /pool "db": an acquire timed out .* ago \(1 timeouts since the pool started\)/);
      await clock.advance(800);
      assert.equal(seen.cleared.length, 0);
      await clock.advance(300);
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_ACQUIRE_TIMEOUT:db']);
      held.release();
    } finally {
      m.close();
      await p.close();
    }
  });

  it('raises LG_ALERT_LEAK while a lease reported held is out, naming its site, and clears it on release', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock);
    const p = pool(clock, { leakWarnAfterMs: 500 });
    p.on('leak', () => undefined); // keep the pool's own stderr line out of the test output
    try {
      const lease = await p.acquire();
      await clock.advance(1100);
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_LEAK:db']);
      assert.match(seen.raised[0]?.message ?? '', /pool "db": 1 lease\(s\) held too long and not released; first acquired at .*alerts\.test\.(ts|js):\d+/);
      lease.release();
      await clock.advance(100);
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_LEAK:db']);
    } finally {
      m.close();
      await p.close();
    }
  });

  it('clears the alerts of a pool that closed', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { saturatedForMs: 0 });
    const p = pool(clock, { max: 1 });
    try {
      await p.acquire();
      await clock.advance(100);
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_POOL_SATURATED:db']);
      await p.close({ timeoutMs: 0 });
      await clock.advance(100);
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_POOL_SATURATED:db']);
    } finally {
      m.close();
    }
  });

  it('raises LG_ALERT_HANDLES_GROWING when the floor of active handles keeps rising, not on a burst', async () => {
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { growthWindowMs: 2000, handleGrowth: 20, intervalMs: 100 });
    const timers: NodeJS.Timeout[] = [];
    try {
      // A burst: 40 timers for one sample, then gone.
      await clock.advance(2100);
      const burst = Array.from({ length: 40 }, () => setTimeout(() => undefined, 60_000));
      await clock.advance(100);
      for (const t of burst) clearTimeout(t);
      await clock.advance(1000);
      assert.deepEqual(seen.raised.filter((a) => a.code === 'LG_ALERT_HANDLES_GROWING'), [], 'a burst is not a creep');
      // A creep: 5 more timers every 200 ms, held.
      for (let i = 0; i < 12; i++) {
        for (let j = 0; j < 5; j++) timers.push(setTimeout(() => undefined, 60_000));
        await clock.advance(200);
      }
      const growing = seen.raised.filter((a) => a.code === 'LG_ALERT_HANDLES_GROWING');
      assert.equal(growing.length, 1);
      assert.equal(growing[0]?.subject, 'process');
      assert.ok((growing[0]?.value ?? 0) >= 20);
      assert.match(growing[0]?.message ?? '', /active handles keep growing: the lowest count rose by \d+ over the window \(threshold 20\)/);
      for (const t of timers.splice(0)) clearTimeout(t);
      await clock.advance(100);
      assert.deepEqual(codes(seen.cleared.filter((a) => a.code === 'LG_ALERT_HANDLES_GROWING')), ['LG_ALERT_HANDLES_GROWING:process']);
    } finally {
      for (const t of timers) clearTimeout(t);
      m.close();
    }
  });
});

/** A copy of the /proc layout the doctor's readers use, with figures the test sets. */
class FakeProc {
  readonly root = mkdtempSync(path.join(tmpdir(), 'lifeguard-proc-'));
  readonly pid = 4242;
  readonly #dir = path.join(this.root, String(this.pid));

  constructor() {
    mkdirSync(path.join(this.#dir, 'net'), { recursive: true });
    mkdirSync(path.join(this.#dir, 'fd'));
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    writeFileSync(path.join(this.#dir, 'net', 'tcp'), header);
    writeFileSync(path.join(this.#dir, 'net', 'tcp6'), header);
    this.set({ fds: 3, limit: 10, threads: 4 });
  }

  set(figures: { fds?: number; limit?: number; threads?: number }): void {
    if (figures.limit !== undefined) {
      writeFileSync(path.join(this.#dir, 'limits'), `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${figures.limit}                   4096                 files\n`);
    }
    if (figures.threads !== undefined) writeFileSync(path.join(this.#dir, 'status'), `Name:\tnode\nPid:\t${this.pid}\nThreads:\t${figures.threads}\n`);
    if (figures.fds !== undefined) {
      const fdDir = path.join(this.#dir, 'fd');
      for (const name of readdirSync(fdDir)) unlinkSync(path.join(fdDir, name));
      for (let fd = 0; fd < figures.fds; fd++) symlinkSync(`/dev/null-${fd}`, path.join(fdDir, String(fd)));
    }
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

describe('AlertMonitor: process conditions', () => {
  it('raises LG_ALERT_FDS_NEAR_LIMIT at 80% of the open-file limit and clears it below', async () => {
    const proc = new FakeProc();
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { process: true, pid: proc.pid, proc: { procRoot: proc.root }, intervalMs: 1e9 });
    try {
      await m.check();
      assert.equal(seen.raised.length, 0);
      proc.set({ fds: 8 });
      await m.check();
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_FDS_NEAR_LIMIT:process']);
      assert.equal(seen.raised[0]?.value, 0.8);
      assert.match(seen.raised[0]?.message ?? '', /8 of 10 file descriptors open \(80%, threshold 80%\)/);
      proc.set({ fds: 7 });
      await m.check();
      assert.deepEqual(codes(seen.cleared), ['LG_ALERT_FDS_NEAR_LIMIT:process']);
    } finally {
      m.close();
      proc.remove();
    }
  });

  it('raises LG_ALERT_THREADS_GROWING when the thread count keeps rising over the window, and clears it when it settles', async () => {
    const proc = new FakeProc();
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { process: true, pid: proc.pid, proc: { procRoot: proc.root }, growthWindowMs: 4000, threadGrowth: 5, intervalMs: 1e9 });
    const threads = (): Alert[] => seen.raised.filter((a) => a.code === 'LG_ALERT_THREADS_GROWING');
    try {
      for (let n = 4; n <= 16; n += 2) {
        proc.set({ threads: n });
        await m.check();
        await clock.advance(1000);
      }
      assert.equal(threads().length, 1);
      assert.match(threads()[0]?.message ?? '', /threads keep growing: the lowest count rose by \d+ over the window \(threshold 5\), now 12/);
      for (let i = 0; i < 5; i++) {
        await m.check();
        await clock.advance(1000);
      }
      assert.deepEqual(codes(seen.cleared.filter((a) => a.code === 'LG_ALERT_THREADS_GROWING')), ['LG_ALERT_THREADS_GROWING:process']);
    } finally {
      m.close();
      proc.remove();
    }
  });

  it('raises LG_ALERT_CLOSE_WAIT for real CLOSE_WAIT sockets above the count, or older than the age, and clears it', { skip: process.platform !== 'linux' && 'reads /proc: Linux only' }, async () => {
    // A server that closes every connection at once, and clients that never close their side.
    const server = net.createServer((socket) => { socket.end(); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const clients: net.Socket[] = [];
    const clock = new FakeClock();
    const { monitor: m, seen } = monitor(clock, { process: true, closeWaitAbove: 2, closeWaitMaxAgeMs: 5000, fdRatio: Infinity, intervalMs: 1e9 });
    try {
      for (let i = 0; i < 3; i++) {
        const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        socket.on('error', () => undefined);
        await new Promise((resolve) => socket.once('end', resolve)); // the server's FIN arrived: CLOSE_WAIT
        clients.push(socket);
      }
      await m.check();
      assert.deepEqual(codes(seen.raised), ['LG_ALERT_CLOSE_WAIT:process']);
      const closeWait = (await readProcessSockets(process.pid)).filter((x) => x.state === 'CLOSE_WAIT');
      assert.equal(seen.raised[0]?.value, 3, `CLOSE_WAIT sockets of this process: ${JSON.stringify(closeWait)}; clients' local ports: ${clients.map((c) => c.localPort).join(',')}`);
      assert.match(seen.raised[0]?.message ?? '', new RegExp(`3 sockets in CLOSE_WAIT \\(threshold 2\\).*127\\.0\\.0\\.1:${port} x3`));
      // Two left: under the count, but they age.
      clients.pop()?.destroy();
      await m.check();
      assert.equal(seen.cleared.length, 1);
      await clock.advance(5000);
      await m.check();
      assert.equal(seen.raised.length, 2);
      assert.equal(seen.raised[1]?.value, 5000, 'the age of the oldest, by sampling');
      assert.match(seen.raised[1]?.message ?? '', /2 sockets in CLOSE_WAIT .*the oldest for at least 5 s \(threshold 5 s\)/);
      for (const c of clients.splice(0)) c.destroy();
      await m.check();
      assert.equal(seen.cleared.length, 2);
    } finally {
      m.close();
      for (const c of clients) c.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('AlertMonitor: lifecycle and options', () => {
  it('runs on the shared housekeeper and leaves no task, timer or handle after close()', async () => {
    const before = activeResources();
    const clock = new FakeClock();
    const keeper = Housekeeper.for(clock);
    const collector = new MetricsCollector({ clock });
    const monitors = Array.from({ length: 50 }, () => new AlertMonitor({ clock, collector, process: false, log: false }));
    assert.equal(keeper.taskCount, 50);
    assert.equal(clock.timers.total, 1, 'one timer for all of them');
    for (const m of monitors) m.close();
    assert.equal(keeper.taskCount, 0);
    assert.equal(clock.timers.total, 0);
    collector.close();
    // With the system clock too: the timer is unref'd and gone after close().
    const real = new AlertMonitor({ log: false });
    await real.check();
    real.close();
    await flush();
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('validates its options, naming the option, what was expected and what was given', () => {
    const clock = new FakeClock();
    const bad = (options: unknown, pattern: RegExp, option: string): void => {
      assert.throws(() => new AlertMonitor(options as AlertMonitorOptions), (e: unknown) => e instanceof InvalidOptionError && e.option === option && pattern.test(e.message));
    };
    bad({ clock, pendingAbov: 3 }, /unknown option "pendingAbov" for AlertMonitor; known options: /, 'pendingAbov');
    bad({ clock, usageRatio: 1.5 }, /invalid option "usageRatio": expected a ratio between 0 and 1 \(or Infinity to disable\), got number 1.5/, 'usageRatio');
    bad({ clock, saturatedForMs: -1 }, /invalid option "saturatedForMs": expected a number >= 0, got number -1/, 'saturatedForMs');
    bad({ clock, intervalMs: 0 }, /invalid option "intervalMs": expected a number >= 1/, 'intervalMs');
    bad({ clock, process: 'yes' }, /invalid option "process": expected a boolean, got the string "yes"/, 'process');
    bad({ clock, log: 'stderr' }, /invalid option "log": expected a function or false, got the string "stderr"/, 'log');
    bad({ clock, pid: 1.5 }, /invalid option "pid": expected an integer >= 1/, 'pid');
    bad({ clock: {} }, /invalid option "clock": expected an object with now\(\), setTimeout\(\) and clearTimeout\(\)/, 'clock');
    const collector = new MetricsCollector();
    bad({ clock, collector }, /invalid option "clock": differs from the clock of the MetricsCollector given/, 'clock');
    collector.close();
    bad({ collector }, /the MetricsCollector given is closed/, 'collector');
    assert.equal(Housekeeper.for(clock).taskCount, 0, 'a rejected monitor registers nothing');
  });
});
