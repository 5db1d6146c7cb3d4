// One measurement of the pool benchmark, in a process of its own (see benchPools): prints ops/s as JSON.
import { POOL_LIBRARIES, measureOnce, type PoolLibrary } from './pool.js';

const [scenario, library, budget] = process.argv.slice(2);
if (scenario === undefined || !POOL_LIBRARIES.includes(library as PoolLibrary) || budget === undefined) {
  console.error('usage: pool-worker <scenario> <library> <budgetSeconds>');
  process.exit(2);
}
process.stdout.write(JSON.stringify(await measureOnce(scenario, library as PoolLibrary, Number(budget))));
