/**
 * Instructions per pool operation, counted by valgrind's callgrind: the pool benchmark's measure that a
 * shared machine's load does not move (wall-clock runs there swing by 2x; these counts by about 1-2%).
 *
 * Each (scenario, library) runs bench/pool-worker.ts under callgrind twice, for `few` and `many`
 * operations of the scenario's loop, with `node --predictable` (no concurrent compilation or GC threads,
 * a fixed random seed); the difference over `many - few` is the cost of one operation, without the
 * process's start, module loading and warm-up, which both runs share. About 45 s per pair on this machine.
 *
 * `node --expose-gc dist/bench/pool-instructions.js [--few=N] [--many=N] [--only=<library>,...]`; writes
 * bench/results/pool-instructions.json. Needs valgrind.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from './harness.js';
import { POOL_LIBRARIES, POOL_SCENARIOS, type PoolLibrary } from './pool.js';

export interface PoolInstructionsCase {
  readonly scenario: string;
  readonly library: PoolLibrary;
  readonly instructionsPerOp: number;
}

function totalOf(file: string): number {
  const match = /^(?:totals|summary): (\d+)/m.exec(readFileSync(file, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no instruction total in ${file}`);
  return Number(match[1]);
}

export function benchPoolInstructions(few: number, many: number, libraries: readonly PoolLibrary[]): PoolInstructionsCase[] {
  const worker = fileURLToPath(new URL('./pool-worker.js', import.meta.url));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeguard-pool-callgrind-'));
  const cases: PoolInstructionsCase[] = [];
  try {
    for (const scenario of POOL_SCENARIOS) {
      for (const library of libraries) {
        const totals = [few, many].map((ops) => {
          const out = path.join(dir, `${library}-${String(ops)}.out`);
          const run = spawnSync('valgrind', ['-q', '--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--predictable', worker, scenario.name, library, `ops:${String(ops)}`], { stdio: 'inherit', timeout: 600_000 });
          if (run.status !== 0) throw new Error(`callgrind run of ${library} (${scenario.name}, ${String(ops)} ops) failed: status ${String(run.status)}`);
          return totalOf(out);
        });
        cases.push({ scenario: scenario.name, library, instructionsPerOp: Math.round(((totals[1] ?? NaN) - (totals[0] ?? NaN)) / (many - few)) });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return cases;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const few = Number(arg('few') ?? 100_000);
  const many = Number(arg('many') ?? 600_000);
  const only = arg('only')?.split(',');
  const libraries = only === undefined ? POOL_LIBRARIES.filter((l) => l !== 'lifeguard-leak-full' && l !== 'tarn') : POOL_LIBRARIES.filter((l) => only.includes(l));
  const cases = benchPoolInstructions(few, many, libraries);
  const rows = cases.map((c) => {
    const baseline = cases.find((b) => b.scenario === c.scenario && b.library === 'baseline')?.instructionsPerOp;
    return [c.scenario, c.library, c.instructionsPerOp.toLocaleString('en-US'), baseline === undefined ? '' : `${(baseline / c.instructionsPerOp).toFixed(2)}x`];
  });
  console.log(`pool instructions per operation (node ${process.version}, callgrind; runs of ${String(few)} and ${String(many)} operations)`);
  console.log(table(['scenario', 'library', 'instructions/op', 'speed vs baseline'], rows));
  const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL('pool-instructions.json', dir), `${JSON.stringify({ node: process.version, operations: [few, many], cases }, null, 2)}\n`);
}
