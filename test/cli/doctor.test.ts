import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { doctorCommand } from '../../src/cli/doctor.js';
import { rank, type DiagnosisReport, type HostProcess, type HostReport } from '../../src/doctor/index.js';
import { activeResources, grown } from '../support/handles.js';
import { readerNote } from '../support/tools.js';

// The compiled CLI and child, next to this compiled test (dist-<name>/test/cli -> dist-<name>/src/cli).
const bin = new URL('../../src/cli/main.js', import.meta.url).pathname;
const childScript = new URL('./close-wait-child.js', import.meta.url).pathname;
const CLOSE_WAIT = 6;

function doctor(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, 'doctor', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('lifeguard doctor (CLI)', { skip: process.platform === 'linux' ? false : 'the doctor reads Linux /proc' }, () => {
  let child: ChildProcessWithoutNullStreams;
  let pid = 0;
  let serverPort = 0;

  before(async () => {
    child = spawn(process.execPath, [childScript, String(CLOSE_WAIT)]);
    child.stderr.setEncoding('utf8');
    let err = '';
    child.stderr.on('data', (chunk: string) => { err += chunk; });
    const [line] = await Promise.race([
      once(child.stdout, 'data') as Promise<[Buffer]>,
      once(child, 'exit').then(() => { throw new Error(`child exited before it was ready: ${err}`); }),
    ]);
    const match = /^ready (\d+)/.exec(line.toString());
    assert.ok(match, `child said ${line.toString()}`);
    serverPort = Number(match[1]);
    pid = child.pid!;
  });

  after(async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin.end();
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
  });

  it('--json prints { pid, sockets, findings } with the CLOSE_WAIT sockets of the child', () => {
    const run = doctor('--pid', String(pid), '--json', '--samples', '2', '--interval-ms', '50');
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as DiagnosisReport;
    assert.equal(report.pid, pid);
    assert.equal(report.samples, 2);
    const closeWait = report.sockets.filter((s) => s.state === 'CLOSE_WAIT');
    assert.equal(closeWait.length, CLOSE_WAIT);
    for (const s of closeWait) {
      assert.deepEqual(s.remote, { address: '127.0.0.1', port: serverPort });
      assert.equal(typeof s.inode, 'number');
      assert.ok(s.inStateMs >= 0);
    }
    assert.equal(report.sockets.filter((s) => s.state === 'LISTEN').length, 1);
    const finding = report.findings[0]!;
    assert.deepEqual([finding.code, finding.severity, finding.data['count']], ['LG_DOCTOR_CLOSE_WAIT', 'warning', CLOSE_WAIT]);
    assert.deepEqual(Object.keys(finding).sort(), ['cause', 'code', 'data', 'details', 'docs', 'explanation', 'fix', 'severity', 'title']);
    assert.equal(report.handles, null);
    assert.ok(report.fds.count >= CLOSE_WAIT * 2 && report.threads.count >= 1);
  });

  it('prints a readable report by default', () => {
    const run = doctor('--pid', String(pid), '--samples', '1');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^lifeguard doctor: process ${pid} at `));
    assert.match(run.stdout, new RegExp(`WARNING LG_DOCTOR_CLOSE_WAIT: ${CLOSE_WAIT} sockets in CLOSE_WAIT`));
    assert.match(run.stdout, new RegExp(`127\\.0\\.0\\.1:${serverPort} +CLOSE_WAIT +${CLOSE_WAIT}`));
    assert.match(run.stdout, /^Note: socket ages are measured by sampling/m);
    assert.match(run.stdout, /which pool and lease hold these sockets is only known inside the process: call diagnoseSelf\(\) there/);
  });

  it('--source says which source was read; ss (when installed) and procfs find the same sockets', { skip: spawnSync('ss', ['-V']).status === 0 ? false : 'no ss (iproute2)' }, () => {
    const counts = (text: string): string => text.split('\n').filter((line) => /^ {2}\S+ +[A-Z_0-9]+ +\d+/.test(line)).join('\n');
    const procfs = doctor('--pid', String(pid), '--samples', '1', '--source', 'procfs');
    const inline = doctor('--pid', String(pid), '--samples', '1', '--source', 'procfs', '--fd-reader', 'inline');
    const ss = doctor('--pid', String(pid), '--samples', '1', '--source', 'ss');
    const ssInline = doctor('--pid', String(pid), '--samples', '1', '--source', 'ss', '--fd-reader', 'inline');
    assert.equal(ss.status, 0, ss.stderr);
    assert.equal(ssInline.status, 0, ssInline.stderr);
    assert.match(procfs.stdout, new RegExp(String.raw`^Source: /proc/PID/net/tcp,tcp6 \(streamed\) \+ /proc/PID/fd ${readerNote}$`, 'm'));
    assert.match(inline.stdout, /^Source: \/proc\/PID\/net\/tcp,tcp6 \(streamed\) \+ \/proc\/PID\/fd$/m);
    assert.match(ss.stdout, new RegExp(String.raw`^Source: netlink \(ss -tanHe, streamed\) \+ /proc/PID/fd ${readerNote}$`, 'm'));
    assert.match(ssInline.stdout, /^Source: netlink \(ss -tanHe\) \+ \/proc\/PID\/fd$/m);
    assert.equal(counts(ss.stdout), counts(procfs.stdout));
    assert.equal(counts(ssInline.stdout), counts(procfs.stdout));
    assert.equal(counts(inline.stdout), counts(procfs.stdout));
    assert.match(counts(ss.stdout), new RegExp(`CLOSE_WAIT +${CLOSE_WAIT}`));
    assert.match(doctor('--pid', String(pid), '--samples', '1', '--source', 'auto').stdout, new RegExp(String.raw`^Source: netlink \(ss -tanHe, streamed\) \+ /proc/PID/fd ${readerNote}$`, 'm'));
  });

  it('exits 1 when a finding is at or above --fail-on, 0 otherwise', () => {
    const base = ['--pid', String(pid), '--samples', '1'];
    assert.equal(doctor(...base).status, 0); // default --fail-on critical; the finding is a warning
    assert.equal(doctor(...base, '--fail-on', 'warning').status, 1);
    assert.equal(doctor(...base, '--fail-on', 'info').status, 1);
    assert.equal(doctor(...base, '--fail-on', 'critical', '--threshold', `closeWaitCritical=${CLOSE_WAIT}`).status, 1);
    assert.equal(doctor(...base, '--fail-on', 'warning', '--threshold', 'closeWaitWarning=10').status, 0);
    assert.equal(doctor(...base, '--fail-on', 'info', '--threshold', 'closeWaitWarning=10').status, 1);
  });

  it('--watch on a terminal redraws the full report in place (ANSI home + clear) and holds nothing once stopped', async () => {
    // Regression: a sample's last helper (ss streamed, readlink) resolved at its 'close', while its process
    // handle was still closing: a watch stopped right after left a ProcessWrap for a turn (2 runs in 8).
    for (const source of [[], ['--source', 'ss']]) {
      for (let round = 0; round < 5; round++) {
        const before0 = activeResources();
        const signalListeners = process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');
        const outputs: string[] = [];
        const closed = new AbortController();
        const code = await doctorCommand(['--pid', String(pid), '--watch', '--interval-ms', '20', '--samples', '2', ...source], {
          out: (text) => {
            outputs.push(text);
            if (outputs.length === 3) closed.abort();
          },
          err: (text) => { assert.fail(text); },
          isTTY: true,
          version: () => '0.0.0',
          outputClosed: closed.signal,
        });
        assert.equal(code, 0);
        assert.equal(outputs.length, 3);
        for (const text of outputs) {
          assert.ok(text.startsWith('\u001b[H\u001b[2J'), JSON.stringify(text.slice(0, 20)));
          assert.match(text, new RegExp(`lifeguard doctor: process ${pid} at `));
          assert.match(text, /\(refreshing every 20 ms; Ctrl-C to stop\)$/);
        }
        assert.match(outputs[2]!, /2 samples over/);
        assert.equal(process.listenerCount('SIGINT') + process.listenerCount('SIGTERM'), signalListeners, 'the watch left a signal listener behind');
        // A descriptor close the last read started may still be completing (a CloseReq): one turn of the loop ends it.
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(grown(before0, activeResources()), {}, `${source.join(' ')} round ${round}`);
      }
    }
  });

  it('--watch prints one line per sample when not a terminal and stops cleanly on SIGTERM', async () => {
    const watcher = spawn(process.execPath, [bin, 'doctor', '--pid', String(pid), '--watch', '--interval-ms', '30', '--fail-on', 'warning']);
    watcher.stdout.setEncoding('utf8');
    let out = '';
    const twoLines = new Promise<void>((resolve) => {
      watcher.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.split('\n').length > 2) resolve();
      });
    });
    const timeout = setTimeout(() => watcher.kill('SIGKILL'), 10_000);
    try {
      await twoLines;
      const exited = once(watcher, 'exit');
      watcher.kill('SIGTERM');
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(signal, null, 'handled SIGTERM itself');
      assert.equal(code, 1, 'the exit code of the last report: a warning, with --fail-on warning');
    } finally {
      clearTimeout(timeout);
    }
    const lines = out.trim().split('\n');
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+ pid=${pid} sockets=\\d+ .*CLOSE_WAIT=${CLOSE_WAIT} .*findings=LG_DOCTOR_CLOSE_WAIT\\(warning\\)$`));
    }
    assert.equal(out.includes('\u001b['), false, 'no ANSI escapes when not a terminal');
  });

  it('--watch --json prints one JSON report per line', async () => {
    const watcher = spawn(process.execPath, [bin, 'doctor', '--pid', String(pid), '--watch', '--json', '--interval-ms', '30', '--samples', '2']);
    watcher.stdout.setEncoding('utf8');
    let out = '';
    await new Promise<void>((resolve) => {
      watcher.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.split('\n').length > 3) resolve();
      });
    });
    const exited = once(watcher, 'exit');
    watcher.kill('SIGINT');
    assert.deepEqual(await exited, [0, null]);
    const reports = out.trim().split('\n').map((l) => JSON.parse(l) as DiagnosisReport);
    assert.deepEqual(reports.slice(0, 3).map((r) => r.samples), [1, 2, 2]);
    assert.ok(reports.every((r) => r.pid === pid));
  });
});

describe('lifeguard doctor (CLI): arguments', () => {
  it('--help describes every option and the exit codes', () => {
    const run = doctor('--help');
    assert.equal(run.status, 0);
    assert.match(run.stdout, /^Usage: lifeguard doctor --pid <pid> \[options\]/);
    for (const flag of ['--pid', '--samples', '--interval-ms', '--json', '--watch', '--fail-on', '--threshold', '--help', '--version']) assert.ok(run.stdout.includes(flag), flag);
    assert.match(run.stdout, /Exit codes: 0 .* 1 .* 2 bad arguments,\n3 /);
    assert.equal(doctor('-v').stdout.trim(), spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' }).stdout.trim());
  });

  it('rejects bad arguments with exit code 2 and a message saying what was wrong', () => {
    const cases: [string[], RegExp][] = [
      [['--pid', '1', '--bogus'], /Unknown option '--bogus'/],
      [[], /option --pid <pid> is required/],
      [['--pid', 'abc'], /option --pid expects an integer >= 1, got "abc"/],
      [['--pid', '1', '--fail-on', 'fatal'], /option --fail-on expects one of info, warning, critical, got "fatal"/],
      [['--pid', '1', '--samples', '0'], /option --samples expects an integer >= 1, got "0"/],
      [['--pid', '1', '--threshold', 'closeWaitWarning'], /option --threshold expects key=number/],
      [['--pid', '1', '--threshold', 'nope=3'], /unknown option "nope" for doctor thresholds/],
      [['--pid', '1', 'extra'], /Unexpected argument 'extra'/],
      [['--pid'], /option --pid expects a value \(the pid of the process to examine\), got none/],
      [['--pid', '-5'], /option --pid expects an integer >= 1, got "-5"/],
      [['--pid', '1', '--interval-ms', '100000000000'], /option --interval-ms expects an integer from 0 to 2147483647 \(about 24\.8 days, the longest timer Node can set\), got "100000000000"/],
      [['--pid', '1', '--interval-ms'], /option --interval-ms expects a value/],
      [['--pid', '1', '--source', 'netlink'], /option --source expects one of auto, procfs, ss, got "netlink"/],
      [['--all', '--source', 'procfs'], /option --source applies to --pid \(--all reads \/proc\)/],
      [['--pid', '1', '--fd-reader', 'thread'], /option --fd-reader expects one of readlink, inline, got "thread"/],
      [['--pid', '1', '--fd-reader'], /option --fd-reader expects a value \(readlink or inline\)/],
      [['--all', '--fd-reader', 'inline'], /option --fd-reader applies to --pid/],
    ];
    for (const [args, message] of cases) {
      const run = doctor(...args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /Run "lifeguard doctor --help" for usage/);
      assert.equal(run.stdout, '');
    }
  });

  it('--pid -5 or a missing value never reaches node\'s "argument is ambiguous"', () => {
    for (const args of [['--pid', '-5'], ['--pid'], ['--samples', '-1', '--pid', '1']]) {
      const run = doctor(...args);
      assert.equal(run.status, 2, run.stderr);
      assert.doesNotMatch(run.stderr, /ambiguous|argument missing/);
    }
  });

  it('exits 3 with the error code when the process cannot be examined', () => {
    const run = doctor('--pid', String(2 ** 30));
    assert.equal(run.status, 3);
    assert.match(run.stderr, /^lifeguard doctor: LG_DOCTOR_NO_PROCESS: no process 1073741824/);
  });
});

// Reading where /proc/PID/fd/N points needs ptrace access, listing the folder does not: root without
// CAP_SYS_PTRACE looking at another user's process may list its descriptors but not read one of them.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((file) => existsSync(file));
const canDropPtrace = process.platform === 'linux' && process.getuid?.() === 0 && setpriv !== undefined;
describe('lifeguard doctor (CLI): descriptors listed but not readable', { skip: canDropPtrace ? false : 'needs Linux, root and setpriv to run a process as another user and the doctor without CAP_SYS_PTRACE' }, () => {
  it('gives LG_DOCTOR_PERMISSION and exit 3, not an EACCES stack', async () => {
    const target = spawn(setpriv!, ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/sleep', '60'], { stdio: 'ignore' });
    try {
      // The fd folder exists once setpriv has exec'd sleep (before that it is root's setpriv).
      const deadline = Date.now() + 10_000;
      while (!readFileSync(`/proc/${target.pid!}/status`, 'utf8').includes('\nUid:\t65534')) {
        if (Date.now() > deadline) throw new Error('the target process never became uid 65534');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const run = spawnSync(setpriv!, ['--inh-caps=-sys_ptrace', '--bounding-set=-sys_ptrace', process.execPath, bin, 'doctor', '--pid', String(target.pid), '--samples', '1'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 3, run.stderr);
      assert.match(run.stderr, new RegExp(`^lifeguard doctor: LG_DOCTOR_PERMISSION: cannot read /proc/${target.pid!}/fd/\\d+: permission denied`));
      assert.match(run.stderr, /CAP_SYS_PTRACE/);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      target.kill('SIGKILL');
    }
  });
});

describe('lifeguard doctor --serve (Prometheus sidecar)', { skip: process.platform === 'linux' ? false : 'the doctor reads Linux /proc' }, () => {
  it('serves the figures of the process as Prometheus metrics on loopback, and stops on SIGTERM', async () => {
    const target = spawn(process.execPath, [childScript, '4']);
    const server = spawn(process.execPath, [bin, 'doctor', '--pid', String(target.pid), '--serve', '127.0.0.1:0', '--interval-ms', '50']);
    try {
      const [line] = (await once(target.stdout, 'data')) as [Buffer];
      const port = /^ready (\d+)/.exec(line.toString())?.[1];
      assert.ok(port !== undefined);
      server.stderr.setEncoding('utf8');
      let said = '';
      const url = await new Promise<string>((resolve, reject) => {
        server.stderr.on('data', (chunk: string) => {
          said += chunk;
          const match = /on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(said);
          if (match?.[1] !== undefined) resolve(match[1]);
        });
        server.once('exit', () => { reject(new Error(`exited: ${said}`)); });
      });
      // Wait (bounded) for a sample that sees all 4 in CLOSE_WAIT.
      let body = '';
      const deadline = Date.now() + 10_000;
      while (!/^lifeguard_doctor_sockets\{state="CLOSE_WAIT"\} 4$/m.test(body)) {
        if (Date.now() > deadline) assert.fail(`no CLOSE_WAIT count of 4 in:\n${body}`);
        const res = await fetch(url);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        body = await res.text();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.match(body, /^lifeguard_doctor_up 1$/m);
      assert.match(body, new RegExp(`^lifeguard_doctor_peer_sockets\\{peer="127\\.0\\.0\\.1:${port}",state="CLOSE_WAIT"\\} 4$`, 'm'));
      assert.match(body, /^process_open_fds \d+$/m);
      assert.match(body, /^process_max_fds \d+$/m);
      assert.match(body, /^lifeguard_doctor_threads \d+$/m);
      assert.match(body, /^lifeguard_doctor_close_wait_oldest_seconds \d+(\.\d+)?$/m);
      assert.match(body, /^# TYPE lifeguard_doctor_findings gauge$/m);
      assert.equal((await fetch(url.replace('/metrics', '/'))).status, 404);
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      assert.deepEqual(await exited, [0, null]);
    } finally {
      server.kill('SIGKILL');
      target.stdin.end();
    }
  });

  it('refuses a non-loopback address unless --allow-remote, and exits 3 for a process that cannot be examined', () => {
    const remote = doctor('--pid', '1', '--serve', '0.0.0.0:9464');
    assert.equal(remote.status, 2);
    assert.match(remote.stderr, /option --serve: 0\.0\.0\.0 is not a loopback address; .* needs --allow-remote/);
    assert.match(doctor('--pid', '1', '--serve', 'nope').stderr, /option --serve expects host:port/);
    const gone = doctor('--pid', String(2 ** 30), '--serve', '127.0.0.1:0');
    assert.equal(gone.status, 3);
    assert.match(gone.stderr, /LG_DOCTOR_NO_PROCESS/);
  });
});

describe('lifeguard doctor --all (host-wide ranking)', { skip: process.platform === 'linux' ? false : 'the doctor reads Linux /proc' }, () => {
  it('ranks the host\'s processes worst first and names a CLOSE_WAIT pile with its pid, command line and remote', async () => {
    const target = spawn(process.execPath, [childScript, '7']);
    try {
      const [line] = (await once(target.stdout, 'data')) as [Buffer];
      const port = /^ready (\d+)/.exec(line.toString())?.[1];
      assert.ok(port !== undefined);
      const run = doctor('--all', '--samples', '2', '--interval-ms', '50', '--json');
      const host = JSON.parse(run.stdout) as HostReport;
      // Default --fail-on critical: exit 1 exactly when some process of the host has a critical finding.
      assert.equal(run.status, host.processes.some((p) => p.findings.some((f) => f.severity === 'critical')) ? 1 : 0, run.stderr);
      assert.equal(host.samples, 2);
      const mine = host.processes.find((p) => p.pid === target.pid);
      assert.ok(mine, `pid ${target.pid!} not listed`);
      assert.equal(mine.closeWait, 7);
      assert.deepEqual(mine.closeWaitRemotes, [{ remote: `127.0.0.1:${port}`, count: 7 }]);
      assert.match(mine.command, /close-wait-child\.js 7$/);
      assert.equal(mine.fdTrend.length, 2);
      // 7 CLOSE_WAIT: at least closeWaitWarning (5), under closeWaitCritical (50).
      assert.deepEqual(mine.findings.map((f) => [f.code, f.severity]), [['LG_DOCTOR_CLOSE_WAIT', 'warning']]);
      assert.match(mine.findings[0]!.title, new RegExp(`^7 sockets in CLOSE_WAIT \\(7 to 127\\.0\\.0\\.1:${port}\\)$`));
      // Worst first, by the documented order.
      for (let i = 1; i < host.processes.length; i++) assert.ok(rank(host.processes[i - 1]!, host.processes[i]!) <= 0, `not ranked at ${i}`);
      const text = doctor('--all', '--samples', '1', '--top', '500');
      assert.ok(text.status === 0 || text.status === 1, text.stderr);
      assert.match(text.stdout, /^lifeguard doctor --all: \d+ processes at /);
      assert.match(text.stdout, new RegExp(`^  WARNING LG_DOCTOR_CLOSE_WAIT: pid ${target.pid!} \\(.*close-wait-child\\.js 7\\): 7 sockets in CLOSE_WAIT`, 'm'));
      assert.match(text.stdout, /^Worst: pid \d+ \(.+\): \d+ CLOSE_WAIT/m);
      assert.match(text.stdout, new RegExp(`^ +${target.pid!} +7 .*close-wait-child.* \\(7x 127\\.0\\.0\\.1:${port}\\)$`, 'm'));
    } finally {
      target.stdin.end();
    }
  });

  it('--fail-on: exits 1 when any process of the host has a finding at or above the level, 0 otherwise', async () => {
    const target = spawn(process.execPath, [childScript, '3']);
    try {
      await once(target.stdout, 'data');
      // Thresholds no process reaches but the child's 3 CLOSE_WAIT sockets (an info finding: fewer than the
      // warning count); only a process at exactly 100% of its descriptor limit could also be a warning.
      const high = ['--threshold', 'closeWaitWarning=1000000', '--threshold', 'closeWaitCritical=1000000', '--threshold', 'fdWarningRatio=1', '--threshold', 'fdCriticalRatio=1'];
      const info = doctor('--all', '--samples', '1', '--fail-on', 'info', '--json', ...high);
      assert.equal(info.status, 1, info.stderr);
      const host = JSON.parse(info.stdout) as HostReport;
      assert.deepEqual(host.processes.find((p) => p.pid === target.pid)?.findings.map((f) => f.severity), ['info']);
      const warning = doctor('--all', '--samples', '1', '--fail-on', 'warning', ...high);
      const atLimit = host.processes.some((p) => p.fdLimit !== null && p.fds >= p.fdLimit);
      assert.equal(warning.status, atLimit ? 1 : 0, warning.stderr);
    } finally {
      target.stdin.end();
    }
  });

  it('--top n lists the n worst processes (text and JSON)', () => {
    const json = JSON.parse(doctor('--all', '--samples', '1', '--top', '2', '--json').stdout) as HostReport;
    assert.equal(json.processes.length, 2);
    const text = doctor('--all', '--samples', '1', '--top', '1').stdout;
    const rows = text.split('\n').filter((line) => /^ +\d+ +\d+ +\d+ +\d+\/\S+ +\d+% +[+-]?\d+ {2}/.test(line));
    assert.equal(rows.length, 1, text);
  });

  it('rejects a bad --top or --fail-on with --all, naming the option, what it expects and what it got', () => {
    const cases: [string[], RegExp][] = [
      [['--all', '--top', '0'], /option --top expects an integer >= 1, got "0"/],
      [['--all', '--top', 'ten'], /option --top expects an integer >= 1, got "ten"/],
      [['--all', '--top', '-3'], /option --top expects an integer >= 1, got "-3"/],
      [['--all', '--top'], /option --top expects a value \(how many processes to list\), got none/],
      [['--pid', '1', '--top', '5'], /option --top only applies to --all/],
      [['--all', '--fail-on', 'fatal'], /option --fail-on expects one of info, warning, critical, got "fatal"/],
      [['--all', '--threshold', 'nope=3'], /unknown option "nope" for doctor thresholds/],
    ];
    for (const [args, message] of cases) {
      const run = doctor(...args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    }
  });

  it('ranks by the most severe finding, then CLOSE_WAIT, then descriptor use against the limit, then growth', () => {
    const base = { command: 'x', sockets: 0, byState: {}, closeWaitRemotes: [], fdLimit: 1024, fdTrend: [], socketTrend: [], socketGrowth: 0, findings: [] };
    const p = (pid: number, closeWait: number, fdRatio: number, fdGrowth: number): HostProcess => ({ ...base, pid, closeWait, fds: Math.round(fdRatio * 1024), fdRatio, fdGrowth });
    const sorted = [p(1, 0, 0.1, 500), p(2, 3, 0.01, 0), p(3, 0, 0.9, 0), p(4, 0, 0.1, 0)].sort(rank).map((x) => x.pid);
    assert.deepEqual(sorted, [2, 3, 1, 4]);
    // A more severe finding comes first: 99% of the descriptors (critical) before 3 CLOSE_WAIT (info).
    const critical: HostProcess = { ...p(5, 0, 0.99, 0), findings: [{ code: 'LG_DOCTOR_FD_LIMIT', severity: 'critical', title: '' }] };
    const info: HostProcess = { ...p(6, 3, 0.01, 0), findings: [{ code: 'LG_DOCTOR_CLOSE_WAIT', severity: 'info', title: '' }] };
    assert.deepEqual([info, critical].sort(rank).map((x) => x.pid), [5, 6]);
  });

  it('rejects --all with --pid', () => {
    const run = doctor('--all', '--pid', '1');
    assert.equal(run.status, 2);
    assert.match(run.stderr, /option --all examines every process: it takes no --pid/);
  });
});
