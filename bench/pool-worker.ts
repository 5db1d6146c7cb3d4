// One measurement of the pool benchmark, in a process of its own (see benchPools): prints ops/s as JSON.
// With `ops:<n>` instead of a budget: exactly n operations, untimed (bench/pool-instructions.ts, under callgrind).
import { POOL_LIBRARIES, measureOnce, runOps, type PoolLibrary } from './pool.js';

const [scenario, library, budget] = process.argv.slice(2);
if (scenario === undefined || !POOL_LIBRARIES.includes(library as PoolLibrary) || budget === undefined) {
  console.error('usage: pool-worker <scenario> <library> <budgetSeconds | ops:<n>>');
  process.exit(2);
}
if (budget.startsWith('ops:')) await runOps(scenario, library as PoolLibrary, Number(budget.slice('ops:'.length)));
else process.stdout.write(JSON.stringify(await measureOnce(scenario, library as PoolLibrary, Number(budget))));
