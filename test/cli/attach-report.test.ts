import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { joinAttachReport, renderAttach, type AttachedReport } from '../../src/cli/attach-report.js';
import type { DiagnosisReport } from '../../src/doctor/index.js';
import { requireService } from '../support/services.js';
import { markers, root, serviceEnv } from '../register/helpers.js';

const run = promisify(execFile);
const bin = new URL('../../src/cli/main.js', import.meta.url).pathname;
const postgres = await requireService('postgres');
const dir = mkdtempSync(path.join(tmpdir(), 'lifeguard-attach-report-'));
const children: ChildProcessWithoutNullStreams[] = [];

/** Starts `args` under node, with `env`; resolves once it printed "ready" (the fixture) or at once (`-e`). */
async function start(args: readonly string[], env: Record<string, string>, waitReady: boolean): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, [...args], { cwd: root, env: { ...process.env, NODE_OPTIONS: '', ...serviceEnv(), APP_RUN_MS: '120000', ...env } });
  children.push(child);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; });
  if (waitReady) {
    await Promise.race([
      once(child.stdout, 'data'),
      once(child, 'exit').then(() => { throw new Error(`the app exited before it was ready: ${err}`); }),
    ]);
  }
  return child;
}

async function doctorJson(pid: number, ...extra: string[]): Promise<AttachedReport> {
  // A generous wait: the process's own report samples for about 2 s, far longer on a loaded machine.
  const { stdout } = await run(process.execPath, [bin, 'doctor', '--pid', String(pid), '--samples', '1', '--json', '--attach-wait-ms', '30000', ...extra], { timeout: 60_000 });
  return JSON.parse(stdout) as AttachedReport;
}

after(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('lifeguard doctor --pid on a process running lifeguard/register', { skip: process.platform !== 'linux' ? 'the doctor reads Linux /proc' : postgres.skip }, () => {
  const attachEnv = (name: string): Record<string, string> => ({ LIFEGUARD_REPORT_SIGNAL: 'SIGUSR2', LIFEGUARD_REPORT_FILE: path.join(dir, `${name}.json`) });

  it('asks the process for its report and names the pool and the line holding each socket', async () => {
    const app = await start(['--import', 'lifeguard/register', 'test/fixtures/register/doctor-app.mjs'], attachEnv('joined'), true);
    const report = await doctorJson(app.pid!);
    assert.equal(report.attach.status, 'joined', report.attach.detail);
    const owned = report.sockets.filter((s) => s.owner != null);
    assert.equal(report.attach.owned, 2);
    assert.deepEqual(owned.map((s) => [s.remote.port, s.owner?.pool]), [[Number(serviceEnv()['PGPORT']), 'pg-pool-1'], [Number(serviceEnv()['PGPORT']), 'pg-pool-1']]);
    const held = owned.find((s) => s.owner?.lease != null);
    assert.ok(held?.owner?.lease?.site?.startsWith(markers('doctor-app.mjs').get('pg') ?? '?') === true, JSON.stringify(owned));
    const { stdout } = await run(process.execPath, [bin, 'doctor', '--pid', String(app.pid), '--samples', '1', '--attach-wait-ms', '30000'], { timeout: 60_000 });
    assert.match(stdout, /Owners \(from the process's lifeguard\/register report taken at .*\): 2 of \d+ sockets held by a pool/);
    assert.match(stdout, /held by pool "pg-pool-1", lease #\d+ acquired at test\/fixtures\/register\/doctor-app\.mjs:7:/);
    assert.equal(app.exitCode, null, 'the app is still running');
  });

  it('--attach-wait-ms 0: does not ask', async () => {
    const app = await start(['--import', 'lifeguard/register', 'test/fixtures/register/doctor-app.mjs'], attachEnv('zero'), true);
    const report = await doctorJson(app.pid!, '--attach-wait-ms', '0');
    assert.equal('attach' in report, false);
  });

  it('says why no owners are joined, and never sends a signal the process does not catch', async () => {
    const idle = 'console.log("ready"); setTimeout(() => {}, 120000);';
    const plain = await start(['-e', idle], {}, true);
    assert.equal((await doctorJson(plain.pid!)).attach.status, 'not-attached');
    const noFile = await start(['--import', 'lifeguard/register', '-e', idle], { LIFEGUARD_REPORT_SIGNAL: 'SIGUSR2' }, true);
    const report = await doctorJson(noFile.pid!);
    assert.equal(report.attach.status, 'no-report-file');
    assert.match(report.attach.detail, /set LIFEGUARD_REPORT_FILE/);
    // "lifeguard/register" in its arguments and the variables set, but no handler: SIGUSR2 would kill it.
    const notListening = await start(['-e', idle, 'lifeguard/register'], attachEnv('deaf'), true);
    assert.equal((await doctorJson(notListening.pid!)).attach.status, 'not-listening');
    for (const child of [plain, noFile, notListening]) assert.equal(child.exitCode ?? child.signalCode, null, 'still running');
  });
});

// Regression (found by the doctor bench after the attach join was merged): for a process without the attach,
// joining spread the report, which read its lazy socket list and built 20,000 objects the text never prints
// (one-off run 2.1x `ss -tanp` and 68.7 MB at 20k sockets, from 1.3x and 58 MB before the join).
describe('joinAttachReport without a report from the process', () => {
  it('leaves the lazy socket list unbuilt, and builds it when the JSON reads it', () => {
    let built = 0;
    const report = { pid: 1, findings: [] } as unknown as DiagnosisReport;
    Object.defineProperty(report, 'sockets', { enumerable: true, get: () => { built++; return []; } });
    const joined = joinAttachReport(report, { report: null, summary: { status: 'not-attached', detail: 'not attached', reportFile: null } });
    assert.equal(renderAttach(joined), 'Owners: not attached.');
    assert.equal(built, 0, 'the socket list was built for a report that does not print it');
    assert.equal(joined.pid, 1);
    assert.deepEqual(JSON.parse(JSON.stringify(joined)), { pid: 1, findings: [], sockets: [], attach: { status: 'not-attached', detail: 'not attached', reportFile: null, takenAt: null, owned: 0 } });
    assert.equal(built, 1);
  });
});
