import { mkdirSync, writeFileSync } from 'node:fs';
import { benchPools, type PoolCase } from './pool.js';
import { formatOps, table } from './harness.js';
import { benchHttp, httpReport } from './http.js';

/**
 * `npm run bench` (about 3 minutes) or `npm run bench -- --quick` (under a minute). Speed is only ever
 * reported as ratios between libraries measured in the same run, never asserted in tests.
 */
const quick = process.argv.includes('--quick');
const rounds = quick ? 3 : 5;
const budgetSeconds = quick ? 0.25 : 0.8;

function report(cases: readonly PoolCase[]): string {
  const rows: string[][] = [];
  for (const scenario of [...new Set(cases.map((c) => c.scenario))]) {
    const of = (library: string): number => cases.find((c) => c.scenario === scenario && c.library === library)?.opsPerSec ?? NaN;
    const baseline = of('baseline');
    const bestPeer = Math.max(of('generic-pool'), of('tarn'));
    for (const c of cases.filter((x) => x.scenario === scenario)) {
      rows.push([scenario, c.library, formatOps(c.opsPerSec), `${(c.opsPerSec / baseline).toFixed(2)}x`, `${(c.opsPerSec / bestPeer).toFixed(2)}x`]);
    }
  }
  return table(['scenario', 'library', 'ops/s', 'vs baseline', 'vs best peer'], rows);
}

const cases = await benchPools(rounds, budgetSeconds);
console.log(`pool benchmark (node ${process.version}, ${rounds} rounds, median)`);
console.log(report(cases));
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(new URL('pool.json', dir), `${JSON.stringify({ node: process.version, cases }, null, 2)}\n`);
console.log(`\nwrote bench/results/pool.json`);

const httpCases = await benchHttp(quick ? 3 : 5, quick ? 1.5 : 3);
console.log(`\nHTTP benchmark (node ${process.version}, ${quick ? 3 : 5} rounds, median)`);
console.log(httpReport(httpCases));
writeFileSync(new URL('http.json', dir), `${JSON.stringify({ node: process.version, cases: httpCases }, null, 2)}\n`);
console.log(`\nwrote bench/results/http.json`);
