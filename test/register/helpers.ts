/** Runs the unmodified sample apps of test/fixtures/register under lifeguard/register and reads what it wrote. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { SERVICES } from '../support/services.js';

export const run = promisify(execFile);
export const root = path.resolve(import.meta.dirname, '..', '..', '..');
const fixtures = path.join(root, 'test', 'fixtures', 'register');

/** One JSON line of the attach. */
export interface Line { lifeguard: string; client?: string; site?: string | null; target?: string; kind?: string; live?: number; subscribers?: number }

/** `file:line:` of each `// LEAK:<name>` marker in a fixture. */
export function markers(file: string): Map<string, string> {
  const out = new Map<string, string>();
  readFileSync(path.join(fixtures, file), 'utf8').split('\n').forEach((line, i) => {
    const match = /\/\/ LEAK:(\w+)/.exec(line);
    if (match?.[1] !== undefined) out.set(match[1], `test/fixtures/register/${file}:${i + 1}:`);
  });
  return out;
}

/** The servers' addresses as the fixtures read them. */
export function serviceEnv(): Record<string, string> {
  const { postgres: pg, mariadb: my, redis } = SERVICES;
  return {
    PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGDATABASE: pg.database,
    MYHOST: my.host, MYPORT: String(my.port), MYUSER: my.user, MYDATABASE: my.database,
    REDIS_HOST: redis.host, REDIS_PORT: String(redis.port), REDIS_DB: '11',
  };
}

/** `node <flag> lifeguard/register <fixture>`: its stdout and the attach's JSON lines from stderr. */
export async function runApp(flag: string, file: string, env: Record<string, string> = {}): Promise<{ stdout: string; lines: Line[] }> {
  const { stdout, stderr } = await run(process.execPath, [flag, 'lifeguard/register', path.join('test', 'fixtures', 'register', file)], {
    cwd: root,
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS: '', ...serviceEnv(), LIFEGUARD_LEAK_AFTER_MS: '200', APP_RUN_MS: '1500', ...env },
  });
  const lines = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  return { stdout, lines };
}
