/**
 * What `lifeguard/register` costs an HTTP app: test/fixtures/register/overhead-app.mjs (a server and its
 * keep-alive client in one process, `http.get` then `fetch`) run plain and attached in turns, side by side
 * in one run, reported as attached/plain ratios of CPU per request, throughput and p99.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median, table } from './harness.js';

const run = promisify(execFile);
// From dist/bench to the repository: the app runs there, where `lifeguard/register` resolves to this package.
const root = fileURLToPath(new URL('../../', import.meta.url));
const app = 'test/fixtures/register/overhead-app.mjs';

interface Figures {
  readonly cpuUsPerRequest: number;
  readonly rps: number;
  readonly p99ms: number;
}

export interface AttachCase {
  readonly client: 'http' | 'fetch';
  readonly plain: Figures;
  readonly attached: Figures;
}

async function once(attached: boolean, requests: number): Promise<Record<'http' | 'fetch', Figures>> {
  const args = attached ? ['--import', 'lifeguard/register', app] : [app];
  const { stdout } = await run(process.execPath, args, {
    cwd: root,
    timeout: 60_000,
    // Leak reports off the table: nothing in the app leaks, and a long threshold keeps it so under load.
    env: { ...process.env, NODE_OPTIONS: '', REQUESTS: String(requests), LIFEGUARD_LEAK_AFTER_MS: '60000' },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<'http' | 'fetch', Figures>;
}

/** `pairs` plain/attached runs in turns (which goes first alternates), the median of each figure. */
export async function benchAttach(pairs: number, requests: number): Promise<AttachCase[]> {
  const runs: Record<'plain' | 'attached', Record<'http' | 'fetch', Figures>[]> = { plain: [], attached: [] };
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? [false, true] : [true, false];
    for (const attached of order) runs[attached ? 'attached' : 'plain'].push(await once(attached, requests));
  }
  const mid = (list: readonly Record<'http' | 'fetch', Figures>[], client: 'http' | 'fetch'): Figures => ({
    cpuUsPerRequest: median(list.map((r) => r[client].cpuUsPerRequest)),
    rps: median(list.map((r) => r[client].rps)),
    p99ms: median(list.map((r) => r[client].p99ms)),
  });
  return (['http', 'fetch'] as const).map((client) => ({ client, plain: mid(runs.plain, client), attached: mid(runs.attached, client) }));
}

/** The side-by-side table: each figure plain -> attached, and attached/plain. */
export function attachReport(cases: readonly AttachCase[]): string {
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
  return table(['client', 'CPU µs/request', 'ratio', 'req/s', 'ratio', 'p99 ms', 'ratio'], cases.map((c) => [
    c.client,
    `${c.plain.cpuUsPerRequest.toFixed(0)} -> ${c.attached.cpuUsPerRequest.toFixed(0)}`, ratio(c.attached.cpuUsPerRequest, c.plain.cpuUsPerRequest),
    `${c.plain.rps.toFixed(0)} -> ${c.attached.rps.toFixed(0)}`, ratio(c.attached.rps, c.plain.rps),
    `${c.plain.p99ms.toFixed(1)} -> ${c.attached.p99ms.toFixed(1)}`, ratio(c.attached.p99ms, c.plain.p99ms),
  ]));
}
