/**
 * Instructions per HTTP request, counted by valgrind's callgrind: the one measure of the HTTP clients'
 * cost that a shared machine's noise does not move (it counts instructions, not seconds; the same run
 * twice gives counts within about 1% of each other, whatever else the machine is doing: only how the
 * event loop happens to batch responses differs).
 *
 * Each library's client runs under callgrind twice, once for `few` requests and once for `many`; the
 * difference divided by `many - few` is the cost of one request, without the process's start, module
 * loading and the first compilations, which both runs share. The server runs natively on a core of its
 * own, as in the HTTP benchmark. Optional (`npm run bench -- --only=instructions`): it needs valgrind and
 * takes several minutes, as code runs about fifty times slower under it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HTTP_LIBRARIES, placement, startServer, startWorker, type HttpLibrary } from './http.js';

export interface InstructionsCase {
  readonly library: HttpLibrary;
  /** Instructions per request: the two runs' difference over the difference of their request counts. */
  readonly instructionsPerRequest: number;
  /** Total instructions of each run (`few` and `many` requests). */
  readonly totals: readonly [number, number];
}

export interface InstructionsBench {
  readonly valgrind: string;
  readonly requests: readonly [number, number];
  readonly cases: InstructionsCase[];
}

/** valgrind's version, or null when it is not installed. */
export function valgrindVersion(): string | null {
  const r = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The instructions callgrind counted in one run (its output file's `totals:` or `summary:` line). */
function totalOf(file: string): number {
  const match = /^(?:totals|summary): (\d+)/m.exec(readFileSync(file, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no instruction total in ${file}`);
  return Number(match[1]);
}

export async function benchInstructions(few: number, many: number): Promise<InstructionsBench> {
  const valgrind = valgrindVersion();
  if (valgrind === null) throw new Error('--only=instructions needs valgrind (apt-get install valgrind)');
  const place = placement();
  const server = await startServer(place);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeguard-callgrind-'));
  const cases: InstructionsCase[] = [];
  try {
    for (const library of HTTP_LIBRARIES) {
      const totals: number[] = [];
      for (const count of [few, many]) {
        const out = path.join(dir, `${library}-${String(count)}.out`);
        // On the HTTP benchmark's client core, like its clients.
        const command = place.clientVia('valgrind', ['-q', '--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath]);
        const worker = startWorker(command, library, server.port);
        try {
          await worker.ask(`requests ${String(count)}`);
          await worker.ask('end');
        } finally {
          worker.end();
        }
        await worker.exited;
        totals.push(totalOf(out));
      }
      const [a = NaN, b = NaN] = totals;
      cases.push({ library, instructionsPerRequest: Math.round((b - a) / (many - few)), totals: [a, b] });
    }
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { valgrind, requests: [few, many], cases };
}
