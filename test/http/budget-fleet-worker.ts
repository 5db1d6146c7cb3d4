/**
 * One process of the HTTP fleet test (forked by test/http/budget-fleet.test.ts): plain undici
 * `request()` and `fetch()` through a LifeguardDispatcher whose `budget` is a RedisBudget shared with the
 * other processes, against the capped server. Reports progress over IPC every 100 ms and a final report,
 * then exits by itself. Config: JSON in argv[2].
 */
import { fetch, request } from 'undici';
import { RedisBudget } from '../../src/budget/index.js';
import { LifeguardDispatcher } from '../../src/http/index.js';

export interface HttpWorkerConfig {
  readonly name: string;
  readonly url: string;
  readonly redis: { readonly host: string; readonly port: number };
  readonly budgetKey: string;
  readonly keyPrefix: string;
  readonly limit: number;
  readonly permitTtlMs: number;
  readonly concurrency: number;
  readonly workMs: number;
  /** Stop after this many requests in total (undefined: until told). */
  readonly requests?: number;
  readonly maxRunMs: number;
}

export interface HttpProgress {
  readonly ok: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  readonly lastError: string | null;
  readonly held: number;
  readonly holderId: string | null;
}

export type HttpWorkerMessage = ({ readonly type: 'progress' } & HttpProgress) | ({ readonly type: 'done'; readonly leftover: string[] } & HttpProgress);

const config = JSON.parse(process.argv[2] ?? '{}') as HttpWorkerConfig;
const send = (message: HttpWorkerMessage): void => {
  if (process.connected) process.send?.(message);
};

const budget = new RedisBudget({
  redis: { host: config.redis.host, port: config.redis.port },
  key: config.budgetKey,
  keyPrefix: config.keyPrefix,
  limit: config.limit,
  permitTtlMs: config.permitTtlMs,
  recoveryGraceMs: 0,
});
// A busy dispatcher never idles a connection, so a lifetime is what rotates permits between processes.
const dispatcher = new LifeguardDispatcher({ name: config.name, budget, connectionsPerOrigin: 8, maxLifetimeMs: 1000 });

let ok = 0;
let failed = 0;
let issued = 0;
let lastError: string | null = null;
const errors: Record<string, number> = {};
let stopping = false;

function codeOf(error: unknown): string {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof e?.code === 'string' ? e.code : 'UNKNOWN';
  const cause = typeof e?.cause?.code === 'string' ? e.cause.code : null;
  return cause === null ? code : `${code}<-${cause}`;
}

const progress = (): HttpProgress => ({ ok, failed, errors: { ...errors }, lastError, held: budget.stats().held, holderId: budget.holderId });

async function once(n: number): Promise<void> {
  const url = `${config.url}/work?ms=${config.workMs}`;
  if (n % 2 === 0) {
    const r = await request(url, { dispatcher });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw Object.assign(new Error(`HTTP ${r.statusCode}: ${text}`), { code: `HTTP_${r.statusCode}` });
  } else {
    const r = await fetch(url, { dispatcher });
    const text = await r.text();
    if (r.status !== 200) throw Object.assign(new Error(`HTTP ${r.status}: ${text}`), { code: `HTTP_${r.status}` });
  }
}

async function loop(): Promise<void> {
  while (!stopping && (config.requests === undefined || issued < config.requests)) {
    const n = issued++;
    try {
      await once(n);
      ok++;
    } catch (error) {
      failed++;
      const code = codeOf(error);
      errors[code] = (errors[code] ?? 0) + 1;
      lastError = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

process.on('message', (message) => {
  if (message === 'stop') stopping = true;
});
const hardStop = setTimeout(() => { stopping = true; }, config.maxRunMs);
const ticker = setInterval(() => { send({ type: 'progress', ...progress() }); }, 100);

await Promise.all(Array.from({ length: config.concurrency }, () => loop()));
clearTimeout(hardStop);
clearInterval(ticker);
await dispatcher.close();
await budget.close();
const leftover = process.getActiveResourcesInfo().filter((type) => type !== 'PipeWrap' && type !== 'TTYWrap');
send({ type: 'done', leftover, ...progress() });
process.disconnect();
