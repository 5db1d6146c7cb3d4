/**
 * HTTP benchmark: requests per second and p99 latency against a local server in a separate process, with
 * the same connection count for every client (10 connections, 50 concurrent requests, 1 KiB body, no
 * pipelining). Each library has client processes of its own, one after another; the clients take turns in
 * short slices (see benchHttp), and the reported figure is requests over time summed across the slices.
 */
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import { Pool as UndiciPool, request, type Dispatcher } from 'undici';
import { createBudget } from '../src/budget/index.js';
import { LifeguardAgent, LifeguardDispatcher } from '../src/http/index.js';
import { keepTickObjectShape } from '../src/internal/tick-shape.js';
import { formatOps, median, table } from './harness.js';

export interface HttpCase {
  readonly scenario: string;
  readonly library: string;
  readonly opsPerSec: number;
  readonly p99Ms: number;
}

const CONNECTIONS = 10;
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

/** Request latencies at 10 µs resolution up to 2 s (slower ones count as 2 s): no allocation while measuring. */
class LatencyHistogram {
  readonly #counts = new Uint32Array(200_001);
  #total = 0;

  add(ms: number): void {
    const i = Math.min(this.#counts.length - 1, Math.round(ms * 100));
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.#total++;
  }

  /** The non-empty buckets, as [bucket, count] pairs: what a client process sends the benchmark. */
  counts(): [number, number][] {
    const out: [number, number][] = [];
    this.#counts.forEach((count, bucket) => {
      if (count > 0) out.push([bucket, count]);
    });
    return out;
  }

  /** Adds another histogram's {@link counts}. */
  merge(counts: readonly (readonly [number, number])[]): void {
    for (const [bucket, count] of counts) {
      this.#counts[bucket] = (this.#counts[bucket] ?? 0) + count;
      this.#total += count;
    }
  }

  /** The latency (ms) that `q` of the requests did not exceed. */
  quantile(q: number): number {
    const rank = Math.ceil(this.#total * q);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i] ?? 0;
      if (seen >= rank && seen > 0) return i / 100;
    }
    return 0;
  }
}

/**
 * Runs CONCURRENCY request loops for `ms`, then waits for the requests in flight: returns how many
 * completed and how long it took (to the last one's end), and records each latency in `latencies`.
 */
async function runSlice(client: Client, ms: number, latencies: LatencyHistogram | null): Promise<{ requests: number; ms: number }> {
  let requests = 0;
  const start = performance.now();
  const deadline = start + ms;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t = performance.now();
      await client.once();
      latencies?.add(performance.now() - t);
      requests++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  return { requests, ms: performance.now() - start };
}

/** Exactly `count` requests, CONCURRENCY at a time. */
async function runRequests(client: Client, count: number): Promise<void> {
  let left = count;
  const loop = async (): Promise<void> => {
    while (left > 0) {
      left--;
      await client.once();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
}

/**
 * Where the server and the clients run. On a machine with two or more cores and `taskset`, the server gets
 * the last core and each client the first: otherwise the scheduler moves them (and their garbage
 * collector threads) onto the same core now and then, and that, not the library, decides a slice.
 */
export interface Placement {
  readonly server: Command;
  readonly client: Command;
  readonly pinned: boolean;
  /** `program` with `args` where the clients run (under taskset when pinned): for a client under another program. */
  clientVia(program: string, args: readonly string[]): Command;
}

/** A program and the arguments that come before the script's own (`taskset -c N node`). */
export interface Command {
  readonly file: string;
  readonly prefix: readonly string[];
}

export function placement(): Placement {
  const cores = os.availableParallelism();
  const taskset = cores >= 2 && spawnSync('taskset', ['-c', '0', process.execPath, '-e', '0']).status === 0;
  const on = (core: number | null, program: string, args: readonly string[]): Command =>
    (core === null ? { file: program, prefix: args } : { file: 'taskset', prefix: ['-c', String(core), program, ...args] });
  const serverCore = taskset ? cores - 1 : null;
  const clientCore = taskset ? 0 : null;
  return {
    server: on(serverCore, process.execPath, []),
    client: on(clientCore, process.execPath, []),
    pinned: taskset,
    clientVia: (program, args) => on(clientCore, program, args),
  };
}

export async function startServer(place: Placement): Promise<{ port: number; stop: () => void }> {
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
      // As shipped plus an in-process budget (issue 13): default leak detection, a permit per connection.
      return viaDispatcher(library, url, new LifeguardDispatcher({ connectionsPerOrigin: CONNECTIONS, budget: createBudget(CONNECTIONS) }));
    case 'lifeguard-agent': {
      const agent = new LifeguardAgent({ connectionsPerOrigin: CONNECTIONS, budget: createBudget(CONNECTIONS) });
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

/**
 * The client process of one library (bench/http-worker.ts runs it): takes commands on stdin, one per
 * line, and answers each with a line of JSON. `warm <ms>`: requests, not measured. `requests <n>`:
 * exactly n requests, not measured (for bench/instructions.ts). `slice <ms>`: a
 * measured slice, answered with `{ requests, ms }`. `end`: answered with the latencies of every measured
 * request (see LatencyHistogram.counts); then the client closes.
 */
export async function runHttpWorker(library: HttpLibrary, port: number, lines: AsyncIterable<string>, answer: (json: string) => void): Promise<void> {
  // Every client process holds nextTick's tick object shape, not only those whose library builds a
  // Lifeguard pool: without it, the processes that idle through a few full collections between their
  // slices (a quarter of node's http.Agent processes, measured) run about 15% slower for the rest of their
  // life (see src/internal/tick-shape.ts), and the comparison would measure that, not the pooling.
  keepTickObjectShape();
  const client = makeClient(library, port);
  const latencies = new LatencyHistogram();
  try {
    for await (const line of lines) {
      const [command, arg] = line.split(' ');
      if (command === 'warm') {
        await runSlice(client, Number(arg), null);
        answer('{}');
      } else if (command === 'requests') {
        await runRequests(client, Number(arg));
        answer('{}');
      } else if (command === 'slice') {
        answer(JSON.stringify(await runSlice(client, Number(arg), latencies)));
      } else if (command === 'end') {
        answer(JSON.stringify(latencies.counts()));
        break;
      } else {
        throw new Error(`http-worker: unknown command ${JSON.stringify(line)}`);
      }
    }
  } finally {
    await client.close();
  }
}

export interface HttpBench {
  readonly cases: HttpCase[];
  /** Whether the server and the clients ran on cores of their own (see placement()). */
  readonly pinned: boolean;
  /** Client processes per library, one after another (each process's own luck, of memory layout and compilation, is averaged). */
  readonly processes: number;
  /** How the clients took turns: slices per library (spread over its processes), and each slice's length. */
  readonly slices: number;
  readonly sliceMs: number;
  /** Unmeasured running per process before its first slice, in turns like the slices. */
  readonly warmMsPerProcess: number;
  /** Per pair (Lifeguard's client / its peer): the median of the ratios of the slices, each slice's pair measured back to back. */
  readonly pairedRatios: Readonly<Record<string, number>>;
  /** Requests per second of every slice, per library, in slice order. */
  readonly samples: Readonly<Record<string, readonly number[]>>;
}

/** Each Lifeguard client and the peer it is compared with. */
export const PAIRS = [['lifeguard-dispatcher', 'undici-pool'], ['lifeguard-agent', 'http-agent']] as const;

/** A client process, driven by commands (see runHttpWorker). */
export interface Worker {
  readonly library: HttpLibrary;
  ask(command: string): Promise<string>;
  /** Ends its stdin: its command loop ends, and so does the process (the exit code is in `exited`). */
  end(): void;
  readonly exited: Promise<void>;
}

export function startWorker(command: Command, library: HttpLibrary, port: number): Worker {
  const script = fileURLToPath(new URL('./http-worker.js', import.meta.url));
  const child = spawn(command.file, [...command.prefix, script, library, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`the ${library} client exited with ${signal ?? `code ${String(code)}`}`));
    });
  });
  exited.catch(() => undefined); // reported by ask() or at the end
  return {
    library,
    exited,
    end: () => {
      child.stdin.end();
    },
    async ask(line: string): Promise<string> {
      child.stdin.write(`${line}\n`);
      const next = await lines.next();
      if (next.done === true) {
        await exited;
        throw new Error(`the ${library} client ended without answering ${JSON.stringify(line)}`);
      }
      return next.value;
    },
  };
}

/**
 * Every library against one server process, in client processes of their own (Lifeguard's dispatcher and
 * undici's Pool share undici's code, and in one process each would run with call sites trained by the
 * other). The clients take turns: each runs a slice of `sliceMs` while the others wait, each Lifeguard
 * client right next to its peer, `cycles` times; then a new process per library takes over, `processes`
 * times in all. Two things move a measurement on a shared machine, and this is built against both:
 * - The machine slows down by a third for seconds at a time. With one process per measurement (about
 *   2.5 s each, as this benchmark used to run), a slow spell fell on one library of a pair and not the
 *   other, and 24 rounds' medians moved by 10% between runs. Slices a quarter of a second apart see the
 *   same machine.
 * - Each process has its own luck (memory layout, what the JIT compiled when): two processes of the same
 *   library, measured in turns, differ by up to 10% for their whole life, and so does a pair's ratio from
 *   one process to the next. Many processes per library, one after another, average it.
 * Each client is measured warm, as a long-running service runs, and warms up in turns as it is measured:
 * `warmRounds` unmeasured turns of `warmMs` each. A process takes about 2 s of running to reach its full
 * speed on this machine (its first slices after one 1.5 s warm-up ran at a third, then four fifths, of
 * the later ones), Lifeguard's dispatcher a little longer than undici's Pool. Warming every client in one
 * go also left the first-warmed idle past undici's 4 s keep-alive, so its first slice reconnected.
 */
export async function benchHttp(processes: number, cycles: number, sliceMs: number, warmRounds: number, warmMs: number): Promise<HttpBench> {
  const place = placement();
  const server = await startServer(place);
  const results = new Map<HttpLibrary, { requests: number; ms: number; perSlice: number[]; latencies: LatencyHistogram }>(HTTP_LIBRARIES.map((l) => [l, { requests: 0, ms: 0, perSlice: [], latencies: new LatencyHistogram() }]));
  try {
    for (let generation = 0; generation < processes; generation++) {
      // One process per library at a time: each waits about a second between its slices, far below any
      // client's idle timeout (undici's is 4 s), so every slice runs on warm connections.
      const workers = HTTP_LIBRARIES.map((library) => startWorker(place.client, library, server.port));
      try {
        for (let round = 0; round < warmRounds; round++) {
          for (const worker of workers) await worker.ask(`warm ${String(warmMs)}`);
        }
        for (let cycle = 0; cycle < cycles; cycle++) {
          const slice = generation * cycles + cycle;
          // Which pair and which of the two goes first alternate.
          const pairs = slice % 2 === 0 ? PAIRS : [...PAIRS].reverse();
          const order = pairs.flatMap(([ours, peer]) => (slice % 4 < 2 ? [ours, peer] : [peer, ours]));
          for (const library of order) {
            const m = JSON.parse(await (workers[HTTP_LIBRARIES.indexOf(library)] as Worker).ask(`slice ${String(sliceMs)}`)) as { requests: number; ms: number };
            const r = results.get(library);
            if (r === undefined) continue;
            r.requests += m.requests;
            r.ms += m.ms;
            r.perSlice.push((m.requests / m.ms) * 1000);
          }
        }
        for (const worker of workers) {
          const counts = JSON.parse(await worker.ask('end')) as [number, number][];
          results.get(worker.library)?.latencies.merge(counts);
          worker.end();
          await worker.exited;
        }
      } finally {
        for (const worker of workers) worker.end();
      }
    }
  } finally {
    server.stop();
  }
  const of = (library: HttpLibrary): { requests: number; ms: number; perSlice: number[]; latencies: LatencyHistogram } => results.get(library) ?? { requests: 0, ms: NaN, perSlice: [], latencies: new LatencyHistogram() };
  const cases = HTTP_LIBRARIES.map((library) => {
    const r = of(library);
    return { scenario: SCENARIO, library, opsPerSec: Math.round((r.requests / r.ms) * 1000), p99Ms: Math.round(r.latencies.quantile(0.99) * 100) / 100 };
  });
  const pairedRatios = Object.fromEntries(PAIRS.map(([ours, peer]) => {
    const a = of(ours).perSlice;
    const b = of(peer).perSlice;
    return [ours, Math.round(median(a.map((x, i) => x / (b[i] ?? NaN))) * 1000) / 1000];
  }));
  return { cases, pinned: place.pinned, processes, slices: cycles * processes, sliceMs, warmMsPerProcess: warmRounds * warmMs, pairedRatios, samples: Object.fromEntries(HTTP_LIBRARIES.map((l) => [l, of(l).perSlice.map(Math.round)])) };
}

export function httpReport(bench: HttpBench): string {
  const { cases, pairedRatios } = bench;
  const of = (library: string): number => cases.find((c) => c.library === library)?.opsPerSec ?? NaN;
  const ratio: Record<string, string> = Object.fromEntries(PAIRS.map(([ours, peer]) => [ours, `${(of(ours) / of(peer)).toFixed(2)}x ${peer} (slices: ${(pairedRatios[ours] ?? NaN).toFixed(2)}x)`]));
  return table(['scenario', 'library', 'req/s', 'p99 ms', 'ratio'], cases.map((c) => [c.scenario, c.library, formatOps(c.opsPerSec), c.p99Ms.toFixed(2), ratio[c.library] ?? '']));
}
