/**
 * HTTP benchmark: requests per second and p99 latency against a local server in a separate process, with
 * the same connection count for every client (10 connections, 50 concurrent requests, 1 KiB body, no
 * pipelining). Libraries run in interleaved rounds, each measurement in a client process of its own; the
 * reported figure is the median round.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Pool as UndiciPool, request, type Dispatcher } from 'undici';
import { LifeguardAgent, LifeguardDispatcher } from '../src/http/index.js';
import { elapsedSeconds, formatOps, median, table } from './harness.js';

export interface HttpCase {
  readonly scenario: string;
  readonly library: string;
  readonly opsPerSec: number;
  readonly p99Ms: number;
}

const CONNECTIONS = 10;
const execFileAsync = promisify(execFile);
const CONCURRENCY = 50;
const SCENARIO = '10 connections, 50 concurrent, 1 KiB body';

interface Client {
  readonly library: string;
  /** One request, body consumed. */
  readonly once: () => Promise<void>;
  readonly close: () => Promise<void>;
}

function viaDispatcher(library: string, url: string, dispatcher: Dispatcher): Client {
  return {
    library,
    once: async () => {
      const res = await request(url, { dispatcher });
      await res.body.arrayBuffer();
    },
    close: () => dispatcher.close(),
  };
}

function viaAgent(library: string, url: string, agent: http.Agent, close: () => Promise<void>): Client {
  return {
    library,
    once: () => new Promise<void>((resolve, reject) => {
      http.get(url, { agent }, (res) => {
        res.on('data', () => undefined);
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    }),
    close,
  };
}

/** Runs CONCURRENCY request loops for `seconds`; returns requests/s and the 99th percentile latency. */
async function measure(client: Client, seconds: number): Promise<{ opsPerSec: number; p99Ms: number }> {
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  const deadline = performance.now() + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t = performance.now();
      await client.once();
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  const elapsed = elapsedSeconds(start);
  latencies.sort((a, b) => a - b);
  return { opsPerSec: latencies.length / elapsed, p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0 };
}

/**
 * Where the server and the clients run. On a machine with two or more cores and `taskset`, the server gets
 * the last core and each client the first: otherwise the scheduler moves them (and their garbage
 * collector threads) onto the same core now and then, and that, not the library, decides a round.
 */
interface Placement {
  readonly server: Command;
  readonly client: Command;
  readonly pinned: boolean;
}

/** A program and the arguments that come before the script's own (`taskset -c N node`). */
interface Command {
  readonly file: string;
  readonly prefix: readonly string[];
}

function placement(): Placement {
  const cores = os.availableParallelism();
  const taskset = cores >= 2 && spawnSync('taskset', ['-c', '0', process.execPath, '-e', '0']).status === 0;
  const node: Command = { file: process.execPath, prefix: [] };
  if (!taskset) return { server: node, client: node, pinned: false };
  const on = (core: number): Command => ({ file: 'taskset', prefix: ['-c', String(core), process.execPath] });
  return { server: on(cores - 1), client: on(0), pinned: true };
}

function run(command: Command, args: readonly string[]): Promise<string> {
  return execFileAsync(command.file, [...command.prefix, ...args]).then((r) => r.stdout);
}

async function startServer(place: Placement): Promise<{ port: number; stop: () => void }> {
  const script = fileURLToPath(new URL('./http-server.js', import.meta.url));
  const child = spawn(place.server.file, [...place.server.prefix, script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (chunk: Buffer) => { resolve(Number(chunk.toString().trim())); });
  });
  return { port, stop: () => { child.stdin.end(); } };
}

/** The client of one library, on the benchmark server at `port`. */
function makeClient(library: HttpLibrary, port: number): Client {
  const url = `http://127.0.0.1:${port}/`;
  switch (library) {
    case 'lifeguard-dispatcher':
      return viaDispatcher(library, url, new LifeguardDispatcher({ connectionsPerOrigin: CONNECTIONS }));
    case 'lifeguard-agent': {
      const agent = new LifeguardAgent({ connectionsPerOrigin: CONNECTIONS });
      return viaAgent(library, url, agent, () => agent.close());
    }
    case 'undici-pool':
      return viaDispatcher(library, url, new UndiciPool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 }));
    case 'http-agent': {
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
      return viaAgent(library, url, agent, () => { agent.destroy(); return Promise.resolve(); });
    }
  }
}

export const HTTP_LIBRARIES = ['lifeguard-dispatcher', 'lifeguard-agent', 'undici-pool', 'http-agent'] as const;
export type HttpLibrary = (typeof HTTP_LIBRARIES)[number];

/** One measurement (bench/http-worker.ts runs it in a process of its own): warm up, then measure. */
export async function measureHttpOnce(library: HttpLibrary, port: number, seconds: number): Promise<{ opsPerSec: number; p99Ms: number }> {
  const client = makeClient(library, port);
  try {
    await measure(client, Math.min(0.5, seconds)); // warm up: connections, JIT
    return await measure(client, seconds);
  } finally {
    await client.close();
  }
}

export interface HttpBench {
  readonly cases: HttpCase[];
  /** Whether the server and the clients ran on cores of their own (see placement()). */
  readonly pinned: boolean;
  /** Per pair (Lifeguard's client / its peer): the median of the ratios of the rounds, each round's pair measured back to back. */
  readonly pairedRatios: Readonly<Record<string, number>>;
  /** Requests per second of every round, per library, in round order. */
  readonly samples: Readonly<Record<string, readonly number[]>>;
}

/** Each Lifeguard client and the peer it is compared with. */
const PAIRS = [['lifeguard-dispatcher', 'undici-pool'], ['lifeguard-agent', 'http-agent']] as const;

/**
 * Every library in interleaved rounds against one server process. Each measurement runs in a fresh
 * client process, as the pool benchmark does: Lifeguard's dispatcher and undici's Pool share undici's
 * code, and in one process each would run with call sites trained by the other.
 */
export async function benchHttp(rounds: number, seconds: number): Promise<HttpBench> {
  const place = placement();
  const server = await startServer(place);
  const worker = fileURLToPath(new URL('./http-worker.js', import.meta.url));
  const results = new Map<HttpLibrary, { ops: number[]; p99: number[] }>(HTTP_LIBRARIES.map((l) => [l, { ops: [], p99: [] }]));
  try {
    for (let round = 0; round < rounds; round++) {
      // Each Lifeguard client runs right next to its peer, so that a round's ratio compares like with like
      // on a shared machine whose speed drifts; which pair and which of the two goes first alternate.
      const pairs = round % 2 === 0 ? PAIRS : [...PAIRS].reverse();
      const order = pairs.flatMap(([ours, peer]) => (round % 4 < 2 ? [ours, peer] : [peer, ours]));
      for (const library of order) {
        const stdout = await run(place.client, [worker, library, String(server.port), String(seconds)]);
        const m = JSON.parse(stdout) as { opsPerSec: number; p99Ms: number };
        const r = results.get(library);
        r?.ops.push(m.opsPerSec);
        r?.p99.push(m.p99Ms);
      }
    }
  } finally {
    server.stop();
  }
  const cases = HTTP_LIBRARIES.map((library) => {
    const r = results.get(library) ?? { ops: [], p99: [] };
    return { scenario: SCENARIO, library, opsPerSec: Math.round(median(r.ops)), p99Ms: Math.round(median(r.p99) * 100) / 100 };
  });
  const ops = (library: HttpLibrary): number[] => results.get(library)?.ops ?? [];
  const pairedRatios = Object.fromEntries(PAIRS.map(([ours, peer]) => {
    const a = ops(ours);
    const b = ops(peer);
    return [ours, Math.round(median(a.map((x, i) => x / (b[i] ?? NaN))) * 1000) / 1000];
  }));
  return { cases, pinned: place.pinned, pairedRatios, samples: Object.fromEntries(HTTP_LIBRARIES.map((l) => [l, ops(l).map(Math.round)])) };
}

export function httpReport(bench: HttpBench): string {
  const { cases, pairedRatios } = bench;
  const of = (library: string): number => cases.find((c) => c.library === library)?.opsPerSec ?? NaN;
  const ratio: Record<string, string> = Object.fromEntries(PAIRS.map(([ours, peer]) => [ours, `${(of(ours) / of(peer)).toFixed(2)}x ${peer} (rounds: ${(pairedRatios[ours] ?? NaN).toFixed(2)}x)`]));
  return table(['scenario', 'library', 'req/s', 'p99 ms', 'ratio'], cases.map((c) => [c.scenario, c.library, formatOps(c.opsPerSec), c.p99Ms.toFixed(2), ratio[c.library] ?? '']));
}
