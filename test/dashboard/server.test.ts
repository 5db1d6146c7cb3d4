import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionError, Pool } from '../../src/index.js';
import { createBudget } from '../../src/budget/index.js';
import { dashboardHandler, mountDashboard, runDashboardCommand, startDashboard, type DashboardState } from '../../src/dashboard/index.js';
import { TestFactory } from '../support/factory.js';
import { activeResources, grown } from '../support/handles.js';
import { events, request, until } from './http.js';

describe('startDashboard()', () => {
  it('serves the page, uPlot, the state, the event stream and /metrics on loopback, and leaves no handle after close()', async () => {
    const before = activeResources();
    const pool = new Pool({ name: 'web', factory: new TestFactory().basic(), max: 4 });
    const dashboard = await startDashboard({ sampleIntervalMs: 50, alerts: { log: false } });
    try {
      assert.match(dashboard.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const lease = await pool.acquire();

      const page = await request(dashboard.url);
      assert.equal(page.status, 200);
      assert.match(page.headers['content-type'] ?? '', /^text\/html/);
      assert.match(page.body, /<script src="uplot\.js"><\/script>/);
      assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
      const uplot = await request(`${dashboard.url}uplot.js`);
      assert.equal(uplot.status, 200);
      assert.match(uplot.body, /uPlot/);
      assert.match((await request(`${dashboard.url}uplot.css`)).body, /\.uplot/);
      assert.match((await request(`${dashboard.url}app.js`)).body, /new uPlot\(/);

      await until('two samples of pool "web"', async () => {
        const state = JSON.parse((await request(`${dashboard.url}api/state`)).body) as DashboardState;
        return (state.pools.find((p) => p.name === 'web')?.series.t.length ?? 0) >= 2;
      });
      const state = JSON.parse((await request(`${dashboard.url}api/state`)).body) as DashboardState;
      const web = state.pools.find((p) => p.name === 'web');
      assert.ok(web);
      assert.equal(web.max, 4);
      assert.equal(web.used, 1);
      assert.equal(web.series.used.at(-1), 1);
      assert.equal(web.series.t.length, web.series.idle.length);
      if (process.platform === 'linux') assert.equal(state.sockets.available, true, state.sockets.error ?? '');

      const [first, second] = await events(`${dashboard.url}events`, 2);
      assert.ok((JSON.parse(first ?? '{}') as DashboardState).pools.some((p) => p.name === 'web'));
      assert.ok((JSON.parse(second ?? '{}') as DashboardState).generatedAt >= (JSON.parse(first ?? '{}') as DashboardState).generatedAt);

      const metrics = await request(`${dashboard.url}metrics`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(metrics.body, /^lifeguard_pool_connections\{pool="web",state="used"\} 1$/m);

      assert.equal((await request(`${dashboard.url}nope`)).status, 404);
      const post = await request(`${dashboard.url}api/state`, 'POST');
      assert.equal(post.status, 405);
      assert.equal(post.headers['allow'], 'GET, HEAD');
      lease.release();
    } finally {
      await dashboard.close();
      await pool.close();
    }
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('closes with an event stream still open, and refuses work after close', async () => {
    const before = activeResources();
    const dashboard = await startDashboard({ sampleIntervalMs: 1000, alerts: false, process: false });
    let connected!: () => void;
    const firstEvent = new Promise<void>((resolve) => { connected = resolve; });
    const ended = new Promise<void>((resolve) => {
      const req = http.get(`${dashboard.url}events`, { agent: false }, (res) => {
        res.once('data', () => { connected(); });
        res.resume();
        res.on('end', resolve);
        res.on('error', () => { resolve(); });
      });
      req.on('error', () => { resolve(); });
    });
    await firstEvent; // the stream is open: close() must end it
    await dashboard.close();
    await ended;
    await dashboard.close();
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('validates its options', async () => {
    await assert.rejects(startDashboard({ prot: 80 } as never), (e: unknown) => e instanceof InvalidOptionError && e.option === 'prot' && /unknown option "prot" for startDashboard/.test(e.message));
    await assert.rejects(startDashboard({ port: 70000 }), /invalid option "port": expected an integer between 0 and 65535, got number 70000/);
    await assert.rejects(startDashboard({ sampleIntervalMs: 1 }), /invalid option "sampleIntervalMs": expected a number >= 10, got number 1/);
    await assert.rejects(startDashboard({ alerts: 'yes' as never }), /invalid option "alerts": expected an AlertMonitor, AlertMonitor options or false, got the string "yes"/);
    await assert.rejects(startDashboard({ alerts: { bogus: 1 } as never }), /unknown option "bogus" for AlertMonitor/);
    assert.throws(() => dashboardHandler({ basePath: 'lifeguard' }), /invalid option "basePath": expected a URL path starting with "\/"/);
    // A port taken: a clear error, and nothing left running.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const before = activeResources();
      await assert.rejects(startDashboard({ port, alerts: false }), new RegExp(`the dashboard could not listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      assert.deepEqual(grown(before, activeResources()), {});
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('mountDashboard()', () => {
  it('serves under a path of the user\'s server and leaves every other request to the server\'s own handler', async () => {
    const before = activeResources();
    const server = http.createServer((_req, res) => { res.end('app'); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const mounted = mountDashboard(server, '/ops/lifeguard/', { alerts: false, process: false, metrics: false });
    try {
      assert.equal(mounted.path, '/ops/lifeguard');
      assert.equal((await request(`${base}/users`)).body, 'app');
      assert.equal((await request(`${base}/ops/lifeguardx`)).body, 'app', 'a path that only starts alike is not the dashboard\'s');
      const redirect = await request(`${base}/ops/lifeguard`);
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers.location, '/ops/lifeguard/');
      assert.match((await request(`${base}/ops/lifeguard/`)).body, /<title>Lifeguard<\/title>/);
      assert.equal((await request(`${base}/ops/lifeguard/api/state?x=1`)).status, 200);
      const metrics = await request(`${base}/ops/lifeguard/metrics`);
      assert.equal(metrics.status, 501);
      assert.match(metrics.body, /metrics: false/);
    } finally {
      await mounted.close();
    }
    assert.match((await request(`${base}/ops/lifeguard/`)).body, /^app$/, 'unmounted: the server\'s own handler again');
    await new Promise((resolve) => server.close(resolve));
    await sleep(20);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('works as middleware: requests outside basePath go to next()', async () => {
    const handler = dashboardHandler({ basePath: '/dash', alerts: false, process: false, metrics: false });
    const server = http.createServer((req, res) => {
      handler(req, res, () => { res.end('next'); });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      assert.equal((await request(`${base}/other`)).body, 'next');
      assert.equal((await request(`${base}/dash/api/state`)).status, 200);
      const head = await request(`${base}/dash/`, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
    } finally {
      await handler.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the dashboard\'s wait-time percentiles', () => {
  it('count acquires that timed out, at the time they waited', async () => {
    const pool = new Pool({ name: 'starved', factory: new TestFactory().basic(), max: 1, acquireTimeoutMs: 80 });
    const handler = dashboardHandler({ alerts: false, process: false, metrics: false, sampleIntervalMs: 20 });
    const held = await pool.acquire();
    try {
      // 1 quick acquire, then 9 that time out: p50 and p99 are timeouts, not the one quick wait.
      const results = await Promise.allSettled(Array.from({ length: 9 }, () => pool.acquire()));
      assert.ok(results.every((r) => r.status === 'rejected'));
      const latest = (): { p50: number; p99: number } => {
        const series = handler.state().pools.find((p) => p.name === 'starved')?.series;
        return { p50: series?.p50.at(-1) ?? 0, p99: series?.p99.at(-1) ?? 0 };
      };
      // Samples come every 20 ms; one taken after the timeouts shows them (without the fix, none ever does).
      await until(`p50 and p99 at 80 ms or more (last: ${JSON.stringify(latest())})`, () => latest().p50 >= 80 && latest().p99 >= 80);
    } finally {
      held.release();
      await handler.close();
      await pool.close();
    }
  });
});

describe('the dashboard and a pool with a budget (issue 15 §2)', () => {
  it('says that creations wait for the budget, with its key, limit, and what is held and waiting here and in the fleet', async () => {
    const budget = createBudget({ limit: 1, key: 'registry' });
    const holder = new Pool({ name: 'holder', factory: new TestFactory().basic(), max: 1, budget });
    const starved = new Pool({ name: 'budget-starved', factory: new TestFactory().basic(), max: 2, budget, acquireTimeoutMs: 5_000 });
    const handler = dashboardHandler({ alerts: false, process: false, metrics: false, sampleIntervalMs: 20 });
    const held = await holder.acquire();
    const waiting = starved.acquire().catch(() => undefined);
    try {
      const budgetOf = (): unknown => handler.state().pools.find((p) => p.name === 'budget-starved')?.budget;
      await until(`the starved pool shows its budget (last: ${JSON.stringify(budgetOf())})`, () => (budgetOf() as { createsWaiting?: number } | undefined)?.createsWaiting === 1);
      assert.deepEqual(budgetOf(), { key: 'registry', limit: 1, heldHere: 1, waitingHere: 1, createsWaiting: 1, heldInFleet: 1, waitingInFleet: 1, fleetAgeMs: 0 });
      assert.equal(handler.state().pools.find((p) => p.name === 'holder')?.budget?.createsWaiting, 0);
    } finally {
      held.release();
      await waiting;
      await handler.close();
      await starved.close();
      await holder.close();
      await budget.close();
    }
  });
});

describe('runDashboardCommand()', () => {
  it('serves the socket view of another process until stopped, and validates its arguments', { skip: process.platform !== 'linux' && 'reads /proc: Linux only' }, async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const stop = new AbortController();
    const io = { out: (l: string) => lines.push(l), err: (l: string) => errors.push(l), signal: stop.signal };
    const running = runDashboardCommand(['--pid', String(process.pid), '--interval-ms', '50'], io);
    await until('the URL', () => lines.length > 0);
    const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(lines[0] ?? '')?.[1];
    assert.ok(url, lines[0]);
    assert.match(lines[0] ?? '', new RegExp(`lifeguard dashboard of process ${process.pid}: .* \\(Ctrl-C to stop\\)`));
    const state = JSON.parse((await request(`${url}api/state`)).body) as DashboardState;
    assert.equal(state.sockets.pid, process.pid);
    stop.abort();
    assert.equal(await running, 0);
    assert.equal(lines.at(-1), 'lifeguard dashboard: stopped');

    assert.equal(await runDashboardCommand(['--pid', String(process.pid), '--duration-ms', '30', '--port', '0'], io), 0);
    assert.equal(await runDashboardCommand(['--help'], io), 0);
    assert.match(lines.at(-1) ?? '', /^Usage: lifeguard dashboard --pid <pid>/);
    assert.equal(await runDashboardCommand([], io), 2);
    assert.match(errors.at(-1) ?? '', /^lifeguard dashboard: --pid is required/);
    assert.equal(await runDashboardCommand(['--pid', 'abc'], io), 2);
    assert.match(errors.at(-1) ?? '', /option --pid: expected an integer from 1 to \d+, got "abc"/);
    assert.equal(await runDashboardCommand(['--pid', '1', '--colour'], io), 2);
    assert.match(errors.at(-1) ?? '', /Unknown option '--colour'/);
  });

  it('rejects a negative or missing --pid and an --interval-ms past the longest timer, naming the option', async () => {
    const errors: string[] = [];
    const io = { out: () => undefined, err: (l: string) => errors.push(l) };
    assert.equal(await runDashboardCommand(['--pid', '-5'], io), 2);
    assert.match(errors.at(-1) ?? '', /^lifeguard dashboard: option --pid: expected an integer from 1 to \d+, got "-5"/);
    assert.equal(await runDashboardCommand(['--pid'], io), 2);
    assert.match(errors.at(-1) ?? '', /^lifeguard dashboard: option --pid expects a value \(the pid of the process to watch\), got none/);
    assert.equal(await runDashboardCommand(['--pid', '1', '--interval-ms', '100000000000'], io), 2);
    assert.match(errors.at(-1) ?? '', /option --interval-ms: expected an integer from 10 to 2147483647, got "100000000000"/);
    assert.ok(errors.every((e) => !e.includes('ambiguous')));
  });

  it('exits 3 with the doctor\'s error code when the process cannot be examined, like the doctor', { skip: process.platform !== 'linux' && 'reads /proc: Linux only' }, async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const code = await runDashboardCommand(['--pid', String(2 ** 30), '--duration-ms', '50'], { out: (l) => lines.push(l), err: (l) => errors.push(l) });
    assert.equal(code, 3);
    assert.deepEqual(lines, [], 'it never started');
    assert.match(errors.join('\n'), /^lifeguard dashboard: LG_DOCTOR_NO_PROCESS: no process 1073741824/);
  });
});
