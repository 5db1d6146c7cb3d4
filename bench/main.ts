import { mkdirSync, writeFileSync } from 'node:fs';
import { benchPools, type PoolCase } from './pool.js';
import { formatOps, table } from './harness.js';
import { benchHttp, httpReport } from './http.js';

/**
 * `npm run bench` (about 6 minutes), `npm run bench -- --quick` (about a minute), and `-- --only=pool` or
 * `-- --only=http` for one part. Speed is only ever reported as ratios between libraries measured in the
 * same run, never asserted in tests.
 */
const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
if (only !== undefined && only !== 'pool' && only !== 'http') {
  console.error(`--only: expected "pool" or "http", got ${JSON.stringify(only)}`);
  process.exit(2);
}
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

const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });

if (only !== 'http') {
  const cases = await benchPools(rounds, budgetSeconds);
  console.log(`pool benchmark (node ${process.version}, ${rounds} rounds, median)`);
  console.log(report(cases));
  writeFileSync(new URL('pool.json', dir), `${JSON.stringify({ node: process.version, cases }, null, 2)}\n`);
  console.log(`\nwrote bench/results/pool.json\n`);
}

if (only !== 'pool') {
  const httpRounds = quick ? 4 : 24;
  const http = await benchHttp(httpRounds, quick ? 1 : 1.25);
  console.log(`HTTP benchmark (node ${process.version}, ${httpRounds} rounds, median; server and clients ${http.pinned ? 'on cores of their own' : 'not pinned'})`);
  console.log(httpReport(http));
  writeFileSync(new URL('http.json', dir), `${JSON.stringify({ node: process.version, pinned: http.pinned, pairedRatios: http.pairedRatios, cases: http.cases, samples: http.samples }, null, 2)}\n`);
  console.log(`\nwrote bench/results/http.json`);
}
