// The pool benchmark: Lifeguard, generic-pool, tarn and a bare baseline, side by side, each measurement in a process of its own.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import genericPool from 'generic-pool';
import { Pool as TarnPool } from 'tarn';
import { Pool } from '../src/pool/pool.js';
import type { PoolOptions } from '../src/pool/options.js';
import { BaselinePool } from './baseline-pool.js';
import { elapsedSeconds, median, type Measurement } from './harness.js';

/**
 * Pool benchmark: Lifeguard (default options, and each leak-detection mode), generic-pool, tarn and a
 * bare baseline, side by side in one run and interleaved round by round, so that machine noise hits
 * every library alike; each measurement in a process of its own.
 */

const SIZE = 10;
const execFileAsync = promisify(execFile);

interface Resource {
  readonly id: number;
}

/** What a scenario needs from a pool, whatever its API. */
interface Subject {
  readonly library: string;
  acquire(): Promise<unknown>;
  release(handle: unknown): void;
  close(): Promise<void>;
}

function resources(): Resource[] {
  return Array.from({ length: SIZE }, (_, id) => ({ id }));
}

function factoryOf(): { create: () => Promise<Resource>; destroy: () => Promise<void> } {
  let id = 0;
  return { create: () => Promise.resolve({ id: id++ }), destroy: () => Promise.resolve() };
}

export const POOL_LIBRARIES = ['lifeguard', 'lifeguard-leak-off', 'lifeguard-leak-full', 'generic-pool', 'tarn', 'baseline'] as const;
export type PoolLibrary = (typeof POOL_LIBRARIES)[number];

function lifeguard(library: string, extra: Partial<PoolOptions<Resource>>): Subject {
  const pool = new Pool<Resource>({ factory: factoryOf(), max: SIZE, ...extra });
  return {
    library,
    acquire: () => pool.acquire(),
    release: (lease) => {
      (lease as { release(): void }).release();
    },
    close: async () => {
      await pool.close();
    },
  };
}

function makeSubject(library: PoolLibrary): Subject {
  switch (library) {
    case 'lifeguard':
      return lifeguard(library, {});
    case 'lifeguard-leak-off':
      return lifeguard(library, { leakDetection: 'off' });
    case 'lifeguard-leak-full':
      return lifeguard(library, { leakDetection: 'full' });
    case 'generic-pool': {
      const pool = genericPool.createPool<Resource>(factoryOf(), { max: SIZE });
      return {
        library,
        acquire: () => pool.acquire(),
        release: (r) => {
          void pool.release(r as Resource);
        },
        close: async () => {
          await pool.drain();
          await pool.clear();
        },
      };
    }
    case 'tarn': {
      const pool = new TarnPool<Resource>({ ...factoryOf(), min: 0, max: SIZE });
      return {
        library,
        acquire: () => pool.acquire().promise,
        release: (r) => {
          pool.release(r as Resource);
        },
        close: () => pool.destroy().then(() => undefined),
      };
    }
    case 'baseline': {
      const pool = new BaselinePool(resources());
      return {
        library,
        acquire: () => pool.acquire(),
        release: (r) => {
          pool.release(r as Resource);
        },
        close: () => Promise.resolve(),
      };
    }
  }
}

/** Warm the pool to SIZE resources so that creation never counts. */
async function warm(subject: Subject): Promise<void> {
  const handles = await Promise.all(Array.from({ length: SIZE }, () => subject.acquire()));
  for (const h of handles) subject.release(h);
}

export interface Scenario {
  readonly name: string;
  run(subject: Subject, budgetSeconds: number): Promise<Measurement>;
}

/** One borrower: acquire, release, repeat. */
const sequential: Scenario = {
  name: 'sequential acquire+release',
  async run(subject, budget) {
    let ops = 0;
    const start = process.hrtime.bigint();
    do {
      for (let i = 0; i < 10_000; i++) {
        subject.release(await subject.acquire());
      }
      ops += 10_000;
    } while (elapsedSeconds(start) < budget);
    return { ops, seconds: elapsedSeconds(start) };
  },
};

/** 1,000 borrowers share 10 resources; each yields once while holding, like a tiny query. */
const concurrent: Scenario = {
  name: '1,000 concurrent borrowers / 10 resources',
  async run(subject, budget) {
    let ops = 0;
    const start = process.hrtime.bigint();
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const handle = await subject.acquire();
        await Promise.resolve();
        subject.release(handle);
        ops++;
        if ((ops & 1023) === 0 && elapsedSeconds(start) >= budget) stop = true;
      }
    };
    await Promise.all(Array.from({ length: 1000 }, worker));
    return { ops, seconds: elapsedSeconds(start) };
  },
};

/** 10,000 acquires issued at once over 10 resources: measures the wait queue. */
const waiters: Scenario = {
  name: '10,000 waiters / 10 resources',
  async run(subject, budget) {
    let ops = 0;
    const start = process.hrtime.bigint();
    do {
      await Promise.all(Array.from({ length: 10_000 }, async () => {
        subject.release(await subject.acquire());
      }));
      ops += 10_000;
    } while (elapsedSeconds(start) < budget);
    return { ops, seconds: elapsedSeconds(start) };
  },
};

export const POOL_SCENARIOS: readonly Scenario[] = [sequential, concurrent, waiters];

export interface PoolCase {
  readonly scenario: string;
  readonly library: PoolLibrary;
  readonly opsPerSec: number;
}

/** One measurement: a fresh pool of `library`, warmed, run once unmeasured, then measured. */
export async function measureOnce(scenarioName: string, library: PoolLibrary, budgetSeconds: number): Promise<number> {
  const scenario = POOL_SCENARIOS.find((s) => s.name === scenarioName);
  if (scenario === undefined) throw new Error(`unknown scenario "${scenarioName}"`);
  const subject = makeSubject(library);
  await warm(subject);
  // A short unmeasured run lets the JIT settle on this library's code.
  await scenario.run(subject, budgetSeconds / 5);
  const m = await scenario.run(subject, budgetSeconds);
  await subject.close();
  return m.ops / m.seconds;
}

/**
 * Exactly `ops` operations of a scenario's loop on a fresh, warmed pool, without reading the clock: what
 * bench/pool-instructions.ts runs under callgrind (twice, for two counts, so that start-up cancels out).
 */
export async function runOps(scenarioName: string, library: PoolLibrary, ops: number): Promise<void> {
  const subject = makeSubject(library);
  await warm(subject);
  if (scenarioName === sequential.name) {
    for (let i = 0; i < ops; i++) subject.release(await subject.acquire());
  } else if (scenarioName === concurrent.name) {
    let done = 0;
    const worker = async (): Promise<void> => {
      while (done < ops) {
        const handle = await subject.acquire();
        await Promise.resolve();
        subject.release(handle);
        done++;
      }
    };
    await Promise.all(Array.from({ length: 1000 }, worker));
  } else if (scenarioName === waiters.name) {
    for (let done = 0; done < ops; done += 10_000) {
      await Promise.all(Array.from({ length: 10_000 }, async () => {
        subject.release(await subject.acquire());
      }));
    }
  } else {
    throw new Error(`unknown scenario "${scenarioName}"`);
  }
  await subject.close();
}

/**
 * Runs every scenario for every library, `rounds` times interleaved; reports the median. Each
 * measurement runs in a fresh process (bench/pool-worker.ts): in a shared process the scenario's call
 * sites see every library (megamorphic), and one library's garbage is collected during another's run,
 * which adds the same fixed cost to all and understates the differences between them.
 */
export async function benchPools(rounds: number, budgetSeconds: number, libraries: readonly PoolLibrary[] = POOL_LIBRARIES): Promise<PoolCase[]> {
  const cases: PoolCase[] = [];
  const worker = fileURLToPath(new URL('./pool-worker.js', import.meta.url));
  for (const scenario of POOL_SCENARIOS) {
    const samples = new Map<PoolLibrary, number[]>(libraries.map((l) => [l, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so that no library always runs first or last.
      const order = libraries.map((_, i) => libraries[(i + round) % libraries.length] as PoolLibrary);
      for (const library of order) {
        const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', worker, scenario.name, library, String(budgetSeconds)]);
        samples.get(library)?.push(Number(JSON.parse(stdout)));
      }
    }
    for (const library of libraries) cases.push({ scenario: scenario.name, library, opsPerSec: Math.round(median(samples.get(library) ?? [])) });
  }
  return cases;
}
