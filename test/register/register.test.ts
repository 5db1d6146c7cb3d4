import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optionsFromEnv } from '../../src/register/attach.js';
import { requireService } from '../support/services.js';
import { markers, root, run, runApp } from './helpers.js';

const service = await requireService('postgres');
const mariadb = await requireService('mariadb');

describe('lifeguard/register on unmodified sample apps', { skip: service.skip }, () => {
  for (const [flag, file] of [['--import', 'esm-app.mjs'], ['-r', 'cjs-app.cjs']] as const) {
    it(`node ${flag} lifeguard/register ${file}: pg, fetch and http leaks reported as JSON lines naming the acquiring line`, async () => {
      const { stdout, lines } = await runApp(flag, file);
      const app = JSON.parse(stdout.trim()) as { status: number; poolIsPg: boolean; name: string; attached: boolean };
      // attached: the pool is the drop-in (and, in ESM, `import { Pool } from 'pg'` is the attached Pool too).
      assert.deepEqual(app, { status: 200, poolIsPg: true, name: 'Pool', attached: true });
      const expected = markers('handler.cjs');
      for (const client of ['pg', 'fetch', 'http']) {
        const leak = lines.find((l) => l.lifeguard === 'leak' && l.client === client);
        assert.ok(leak !== undefined, `a ${client} leak line in ${JSON.stringify(lines)}`);
        assert.equal(leak.kind, 'held');
        assert.ok(leak.site?.startsWith(expected.get(client) ?? '?') === true, `${client} leak site ${String(leak.site)} should be ${String(expected.get(client))}`);
      }
    });

    it(`node ${flag} lifeguard/register ${file}: no leak line when the app releases and consumes everything`, async () => {
      const { stdout, lines } = await runApp(flag, file, { APP_CLEAN: '1' });
      assert.equal((JSON.parse(stdout.trim()) as { status: number }).status, 200);
      assert.deepEqual(lines.filter((l) => l.lifeguard === 'leak'), []);
    });
  }

  it('node --import lifeguard/register mysql-app.mjs: mysql2 pools (callback, promise, named import) attached, a leak named by line', { skip: mariadb.skip }, async () => {
    const { stdout, lines } = await runApp('--import', 'mysql-app.mjs');
    const app = JSON.parse(stdout.trim()) as { rows: unknown; viaCallback: unknown; viaNamed: unknown; attached: boolean[] };
    assert.deepEqual(app, { rows: [{ x: 1 }], viaCallback: [{ x: 2 }], viaNamed: [{ x: 3 }], attached: [true, true, true] });
    const leak = lines.find((l) => l.lifeguard === 'leak' && l.client === 'mysql2');
    assert.ok(leak?.site?.startsWith(markers('mysql-app.mjs').get('mysql2') ?? '?') === true, `a mysql2 leak at the marked line in ${JSON.stringify(lines)}`);
  });

  it('writes diagnoseSelf()\'s report on LIFEGUARD_REPORT_SIGNAL', async () => {
    const script = "setTimeout(() => process.kill(process.pid, 'SIGUSR2'), 50); setTimeout(() => {}, 3000);";
    const { stderr } = await run(process.execPath, ['--import', 'lifeguard/register', '-e', script], {
      cwd: root, timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '', LIFEGUARD_REPORT_SIGNAL: 'SIGUSR2' },
    });
    const report = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { lifeguard: string; report?: { pid?: number } }).find((l) => l.lifeguard === 'report');
    assert.ok(report?.report !== undefined, `a report line in ${stderr}`);
  });
});

describe('lifeguard/register environment variables', () => {
  it('reads each variable and refuses bad values by name', () => {
    assert.deepEqual(optionsFromEnv({ LIFEGUARD_ATTACH: 'pg, fetch', LIFEGUARD_LEAK_AFTER_MS: '500', LIFEGUARD_DASHBOARD_PORT: '0', LIFEGUARD_REPORT_SIGNAL: 'SIGUSR2', LIFEGUARD_REPORT_FILE: '/tmp/r.json' }),
      { clients: ['pg', 'fetch'], leakAfterMs: 500, dashboardPort: 0, reportSignal: 'SIGUSR2', reportFile: '/tmp/r.json' });
    assert.deepEqual(optionsFromEnv({}), {});
    assert.throws(() => optionsFromEnv({ LIFEGUARD_ATTACH: 'pg,redis' }), /invalid LIFEGUARD_ATTACH: .*got "redis"/);
    assert.throws(() => optionsFromEnv({ LIFEGUARD_LEAK_AFTER_MS: '0' }), /invalid LIFEGUARD_LEAK_AFTER_MS: expected an integer >= 1, got "0"/);
    assert.throws(() => optionsFromEnv({ LIFEGUARD_DASHBOARD_PORT: '70000' }), /invalid LIFEGUARD_DASHBOARD_PORT/);
    assert.throws(() => optionsFromEnv({ LIFEGUARD_REPORT_SIGNAL: 'SIGKILL' }), /invalid LIFEGUARD_REPORT_SIGNAL/);
  });
});

describe('lifeguard/register -r: pools made in the first milliseconds', { skip: service.skip || mariadb.skip }, () => {
  it('node -r lifeguard/register early-app.cjs: pg and mysql2 pools made before the ESM half loaded are attached, their leaks named by line (register_cjs_misses_early_pools)', async () => {
    const { stdout, lines } = await runApp('-r', 'early-app.cjs');
    const app = JSON.parse(stdout.trim()) as { rows: unknown; viaCallback: unknown; attached: boolean[] };
    assert.deepEqual(app, { rows: [{ x: 1 }], viaCallback: [{ x: 2 }], attached: [true, true, true] });
    const expected = markers('early-app.cjs');
    const sites = lines.filter((l) => l.lifeguard === 'leak').map((l) => l.site ?? '');
    for (const marker of ['pg', 'mysql2', 'mysql2promise']) {
      assert.ok(sites.some((site) => site.startsWith(expected.get(marker) ?? '?')), `a leak at ${String(expected.get(marker))} in ${JSON.stringify(lines)}`);
    }
  });

  it('node -r lifeguard/register early-app.cjs: no leak line when the app releases everything', async () => {
    const { lines } = await runApp('-r', 'early-app.cjs', { APP_CLEAN: '1' });
    assert.deepEqual(lines.filter((l) => l.lifeguard === 'leak'), []);
  });
});
