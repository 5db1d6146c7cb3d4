import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Pool } from '../../src/index.js';
import { startDashboard } from '../../src/dashboard/index.js';
import { guardServer } from '../../src/server/index.js';
import { activeResources, grown } from '../support/handles.js';

const CHROMIUM = '/usr/bin/chromium';
const required = process.env['LIFEGUARD_REQUIRE_BROWSER'] === '1';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found: install Debian's "chromium" package (apt-get install -y chromium) to run the dashboard's browser test`;
if (skip !== false && required) throw new Error(`LIFEGUARD_REQUIRE_BROWSER=1 but ${skip}`);

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A loopback server that answers each line with the same line, so the pool below holds real sockets. */
async function echoServer(): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

// The callbacks below run in the page; this file is compiled without the DOM library, so they reach it
// through these minimal shapes.
interface PageElement {
  readonly textContent: string | null;
  readonly dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
}
interface PageGlobals {
  readonly document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): ArrayLike<PageElement> };
  readonly __lifeguard?: { charts: Record<string, { data: (number | null)[][] }> };
}

interface ChartView {
  readonly keys: string[];
  readonly canvases: number;
  /** Lengths of each data column of the chart, x first. */
  readonly columns: number[];
  readonly lastUsed: number | null;
}

function chartView(page: Page, key: string): Promise<ChartView> {
  return page.evaluate((k) => {
    const page = globalThis as unknown as PageGlobals;
    const charts = page.__lifeguard?.charts ?? {};
    const chart = charts[k];
    const used = chart?.data[1];
    return {
      keys: Object.keys(charts),
      canvases: page.document.querySelectorAll('.uplot canvas').length,
      columns: chart === undefined ? [] : chart.data.map((c) => c.length),
      lastUsed: used === undefined ? null : (used[used.length - 1] ?? null),
    };
  }, key);
}

describe('the dashboard in a real headless Chromium', { skip }, () => {
  it('loads, fills its uPlot charts with live data, and lists a leaked lease with its stack', async () => {
    const before = activeResources();
    const echo = await echoServer();
    const pool = new Pool<net.Socket>({
      name: 'orders',
      max: 4,
      leakDetection: 'full',
      leakWarnAfterMs: 300,
      factory: {
        create: ({ signal }) => new Promise((resolve, reject) => {
          const socket = net.connect({ port: echo.port, host: '127.0.0.1', signal });
          socket.once('connect', () => { socket.off('error', reject); resolve(socket); });
          socket.once('error', reject);
        }),
        destroy: (socket) => { socket.destroy(); },
      },
    });
    pool.on('leak', () => undefined);
    // A guarded server next to the pool: one client half-closes on it and its application never ends.
    const held: net.Socket[] = [];
    const couch = net.createServer({ allowHalfOpen: true }, (s) => { held.push(s); s.resume(); });
    const couchGuard = guardServer(couch, { name: 'couch', halfClosedTimeoutMs: 60_000 });
    await new Promise<void>((resolve) => couch.listen(0, '127.0.0.1', resolve));
    const halfClosing = net.connect({ port: (couch.address() as net.AddressInfo).port, host: '127.0.0.1' });
    halfClosing.resume();
    halfClosing.on('connect', () => { halfClosing.end(); });
    const dashboard = await startDashboard({ sampleIntervalMs: 100, alerts: { log: false, intervalMs: 100 } });
    const browser = await launch();
    try {
      const held = await Promise.all([pool.acquire(), pool.acquire()]);
      const page = await browser.newPage();
      const failures: string[] = [];
      page.on('pageerror', (error) => failures.push(error.message));
      page.on('console', (message) => { if (message.type() === 'error') failures.push(message.text()); });
      await page.goto(dashboard.url);
      assert.equal(await page.title(), 'Lifeguard');

      await page.waitForFunction(() => {
        const chart = (globalThis as unknown as PageGlobals).__lifeguard?.charts['connections:orders'];
        return chart !== undefined && (chart.data[0]?.length ?? 0) >= 5;
      }, undefined, { timeout: 10_000 });
      const connections = await chartView(page, 'connections:orders');
      assert.ok(connections.keys.includes('wait:orders'), `charts: ${connections.keys.join(', ')}`);
      assert.ok(connections.keys.includes('sockets'), `charts: ${connections.keys.join(', ')}`);
      assert.ok(connections.canvases >= 3, 'a uPlot canvas per chart');
      assert.equal(connections.columns.length, 4, 'time, used, idle, pending');
      assert.ok(connections.columns.every((n) => n === connections.columns[0] && n >= 5));
      assert.equal(connections.lastUsed, 2);
      // Samples 100 ms apart: the time axis still labels whole seconds at the least, not every 0.5 s.
      // The socket table is read apart from the pools (one read at a time): on a loaded machine it can lag
      // behind them, and a chart of one sample has no time labels.
      await page.waitForFunction(() => ((globalThis as unknown as PageGlobals).__lifeguard?.charts['sockets']?.data[0]?.length ?? 0) >= 3, undefined, { timeout: 10_000 });
      const splits = await page.evaluate(() => {
        const chart = (globalThis as unknown as { __lifeguard: { charts: Record<string, { axes: { _splits?: number[] | null }[] }> } }).__lifeguard.charts['sockets'];
        return chart?.axes[0]?._splits ?? [];
      });
      assert.ok(splits.length >= 1, 'the time axis has labels');
      for (let i = 1; i < splits.length; i++) assert.ok(splits[i]! - splits[i - 1]! >= 1, `time axis labels ${splits.join(', ')}`);
      const sockets = await page.evaluate(() => Array.from((globalThis as unknown as PageGlobals).document.querySelectorAll('#remotes tr td:first-child')).map((td) => td.textContent));
      assert.ok(sockets.includes(`127.0.0.1:${echo.port}`), `remotes listed: ${sockets.join(', ')} (echo port ${String(echo.port)}, couch port ${String((couch.address() as net.AddressInfo).port)})`);

      // The guarded server's section: figures, its chart, and the half-closed socket listed first.
      await page.waitForSelector('section.server[data-server="couch"] table.server-sockets tr[data-state="half-closed"]', { timeout: 10_000 });
      const server = await page.evaluate(() => {
        const section = (globalThis as unknown as PageGlobals).document.querySelector('section.server[data-server="couch"]');
        return { figures: section?.querySelector('.figures')?.textContent ?? '', oldest: section?.querySelector('.oldest')?.textContent ?? '' };
      });
      assert.match(server.figures, /open 1 .*half-closed 1 .*reaped: half-closed 0, idle 0, destroyed 0/);
      assert.match(server.oldest, /^oldest: 127\.0\.0\.1:\d+, half-closed, open \d+\.\d s$/);
      assert.ok((await chartView(page, 'server:couch')).columns.length === 6, 'time, active, idle, raw, upgraded, half-closed');

      // Leak one: acquired here, never released (the two above are reported too: they are held as long).
      const leaked = await pool.acquire({ label: 'browser-test-leak' });
      const findLeak = (): { text: string; pool: string | undefined; stack: string } | null => {
        const item = Array.from((globalThis as unknown as PageGlobals).document.querySelectorAll('#leaks li.leak.open')).find((li) => li.textContent?.includes('browser-test-leak') === true);
        return item === undefined ? null : { text: item.textContent ?? '', pool: item.dataset['pool'], stack: item.querySelector('pre.stack')?.textContent ?? '' };
      };
      await page.waitForFunction(findLeak, undefined, { timeout: 10_000 });
      const leak = await page.evaluate(findLeak);
      assert.ok(leak);
      assert.equal(leak.pool, 'orders');
      assert.match(leak.text, /lease #\d+ of pool "orders" held for \d+ ms .*label "browser-test-leak"/);
      assert.match(leak.stack, /browser\.test\.(ts|js):\d+/, 'the stack names the line that leaked');
      await page.waitForSelector('#alerts li.alert[data-code="LG_ALERT_LEAK"]', { timeout: 10_000 });
      assert.deepEqual(failures, [], 'no script error on the page');

      const leakedId = leaked.id;
      leaked.release();
      await page.waitForFunction((id) => (globalThis as unknown as PageGlobals).document.querySelector(`#leaks li.leak.open[data-lease="${id}"]`) === null, leakedId, { timeout: 10_000 });
      for (const lease of held) lease.release();
    } finally {
      await browser.close();
      await dashboard.close();
      // Leases a failed assertion left out are taken back at once.
      await pool.close({ timeoutMs: 0 });
      for (const socket of echo.sockets) socket.destroy();
      await new Promise((resolve) => echo.server.close(resolve));
      halfClosing.destroy();
      for (const s of held) s.destroy();
      couchGuard.close();
      await new Promise((resolve) => couch.close(resolve));
    }
    await sleep(50);
    assert.deepEqual(grown(before, activeResources()), {});
  });

  it('lets a headless screenshot on virtual time finish (no fetch held open)', async () => {
    const dashboard = await startDashboard({ sampleIntervalMs: 200, alerts: false });
    const dir = await mkdtemp(path.join(tmpdir(), 'lifeguard-shot-'));
    const file = path.join(dir, 'dashboard.png');
    try {
      // Chromium's own screenshot mode: it waits until the virtual-time budget runs out, and virtual time
      // stands still while any fetch is pending. Bounded: a page holding a stream open never finishes.
      const shot = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--user-data-dir=${dir}`, '--virtual-time-budget=3000', `--screenshot=${file}`, '--window-size=1024,768', dashboard.url], { stdio: 'ignore' });
      const killer = setTimeout(() => shot.kill('SIGKILL'), 60_000);
      const [code, signal] = (await once(shot, 'exit')) as [number | null, NodeJS.Signals | null];
      clearTimeout(killer);
      assert.equal(signal, null, 'the screenshot did not finish within 60 s');
      assert.equal(code, 0);
      assert.ok(statSync(file).size > 1000, 'a PNG was written');
    } finally {
      await dashboard.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
