/**
 * The package as a user gets it: `npm pack` of a copy of this checkout (its prepack build included), installed
 * into a fresh consumer project, every subpath imported, a TypeScript consumer type-checked against the
 * published `.d.ts`, and the `lifeguard` CLI run from the consumer's node_modules/.bin.
 *
 * Regression test for "npm pack ships no code": the tarball carried docs only, with no prepack build, so every
 * export pointed at a missing file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isolatedTempDir } from '../support/isolated-dir.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  exports: Record<string, string | { types?: string; default?: string }>;
  bin: Record<string, string>;
  peerDependencies: Record<string, string>;
};
/** Subpaths whose module loads a driver when imported: without it they must fail with a code. */
const DRIVER_SUBPATHS: Readonly<Record<string, string>> = { './pg': 'pg', './mysql2': 'mysql2', './mysql2/promise': 'mysql2', './ioredis': 'ioredis' };
const SUBPATHS = Object.keys(PKG.exports).filter((key) => key !== './package.json');
const LONG = { timeout: 4 * 60_000, maxBuffer: 64 * 1024 * 1024 };

/** Imports each subpath in a fresh process; prints `{ subpath: 'ok' | error code or message }`. */
const IMPORT_ALL = `
const out = {};
for (const sub of JSON.parse(process.argv.at(-1))) {
  const spec = sub === '.' ? '${PKG.name}' : '${PKG.name}/' + sub.slice(2);
  try { await import(spec); out[sub] = 'ok'; }
  catch (error) { out[sub] = error?.code ?? String(error?.message ?? error); }
}
console.log(JSON.stringify(out));
`;

describe('the packed package, installed into a fresh project', () => {
  let work = '';
  let consumer = '';
  let files: string[] = [];

  before(async () => {
    work = isolatedTempDir('lifeguard-pack-');
    const copy = path.join(work, 'src-copy');
    // What a fresh clone holds: the files git knows (tracked, or new and not ignored), never dist/.
    const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: LONG.maxBuffer });
    for (const file of stdout.split('\0')) {
      if (file === '' || !existsSync(path.join(ROOT, file))) continue;
      mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
      cpSync(path.join(ROOT, file), path.join(copy, file));
    }
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
    const out = path.join(work, 'out');
    mkdirSync(out);
    // A plain `npm pack`: whatever build the package needs must run from its own lifecycle scripts.
    await run('npm', ['pack', '--pack-destination', out, '--no-audit', '--no-fund'], { cwd: copy, ...LONG });
    const tarball = readdirSync(out).find((name) => name.endsWith('.tgz'));
    assert.ok(tarball !== undefined, 'npm pack wrote no tarball');
    files = (await run('tar', ['-tzf', path.join(out, tarball)], LONG)).stdout.split('\n').filter((f) => f !== '').map((f) => f.replace(/^package\//, ''));

    consumer = path.join(work, 'consumer');
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    await run('npm', ['install', path.join(out, tarball), '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'], { cwd: consumer, ...LONG });
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('carries the built code of every export and of the bin, and no tests or sources', () => {
    const shipped = new Set(files);
    for (const [sub, target] of Object.entries(PKG.exports)) {
      const targets = typeof target === 'string' ? [target] : Object.values(target);
      for (const t of targets) assert.ok(shipped.has(t.replace(/^\.\//, '')), `export "${sub}" points at ${t}, which the tarball lacks`);
    }
    for (const [name, target] of Object.entries(PKG.bin)) assert.ok(shipped.has(target.replace(/^\.\//, '')), `bin "${name}" points at ${target}, which the tarball lacks`);
    assert.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || /^src\/.*\.ts$/.test(f)), [], 'tests, benchmarks or TypeScript sources shipped');
  });

  it('imports every subpath without the optional peers; driver subpaths fail with LG_DRIVER_MISSING', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', IMPORT_ALL, JSON.stringify(SUBPATHS)], { cwd: consumer, ...LONG });
    const result = JSON.parse(stdout) as Record<string, string>;
    for (const sub of SUBPATHS) {
      assert.equal(result[sub], DRIVER_SUBPATHS[sub] === undefined ? 'ok' : 'LG_DRIVER_MISSING', `import of "${sub}" without the optional peers`);
    }
  });

  it('imports every subpath and runs a pool, a CLI and a TypeScript consumer with the peers installed', async () => {
    // The peers this checkout has, linked in: node resolves their own dependencies from their real path.
    const modules = path.join(consumer, 'node_modules');
    for (const name of [...Object.keys(PKG.peerDependencies), '@types/node', '@types/pg']) {
      const link = path.join(modules, name);
      if (existsSync(link)) continue;
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(path.join(ROOT, 'node_modules', name), link, 'dir');
    }
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', IMPORT_ALL, JSON.stringify(SUBPATHS)], { cwd: consumer, ...LONG });
    assert.deepEqual(JSON.parse(stdout), Object.fromEntries(SUBPATHS.map((sub) => [sub, 'ok'])));

    const use = `
import { Pool } from '${PKG.name}';
const pool = new Pool({ name: 'packed', max: 2, factory: { create: async () => ({ n: 1 }), destroy: async () => {} } });
const n = await pool.use(async (r) => r.n);
await pool.close();
console.log(JSON.stringify({ n })); // and the process exits: close() left no handle
`;
    const used = JSON.parse((await run(process.execPath, ['--input-type=module', '-e', use], { cwd: consumer, ...LONG })).stdout) as { n: number };
    assert.equal(used.n, 1);
    const defaults = `
import pg from '${PKG.name}/pg';
import mysql from '${PKG.name}/mysql2/promise';
const pool = new pg.Pool({ max: 1 });
console.log(JSON.stringify({ lifeguard: 'lifeguard' in pool, client: typeof pg.Client, createConnection: typeof mysql.createConnection }));
await pool.end();
`;
    assert.deepEqual(JSON.parse((await run(process.execPath, ['--input-type=module', '-e', defaults], { cwd: consumer, ...LONG })).stdout), { lifeguard: true, client: 'function', createConnection: 'function' });

    const bin = path.join(modules, '.bin', 'lifeguard');
    assert.equal((await run(bin, ['--version'], { cwd: consumer, ...LONG })).stdout.trim(), PKG.version);
    const doctor = JSON.parse((await run(bin, ['doctor', '--pid', String(process.pid), '--json'], { cwd: consumer, ...LONG })).stdout) as { pid: number };
    assert.equal(doctor.pid, process.pid);

    // The zero-code attach from the tarball, both ways: the CommonJS preload (index.cjs and early.cjs) and --import.
    const probe = "const pg = require('pg'); setTimeout(() => { console.log(JSON.stringify({ attached: 'lifeguard' in new pg.Pool({ max: 1 }) })); }, 300);";
    for (const flag of ['-r', '--import']) {
      const { stdout: attachedOut, stderr } = await run(process.execPath, [flag, `${PKG.name}/register`, '-e', probe], { cwd: consumer, ...LONG });
      assert.deepEqual(JSON.parse(attachedOut), { attached: true }, `node ${flag} ${PKG.name}/register: ${stderr}`);
      assert.doesNotMatch(stderr, /attach-error/);
    }

    // The published declarations, checked as a strict TypeScript consumer compiles them (skipLibCheck off).
    const imports = SUBPATHS.map((sub, i) => `import * as m${i} from '${sub === '.' ? PKG.name : `${PKG.name}/${sub.slice(2)}`}';`).join('\n');
    writeFileSync(path.join(consumer, 'index.ts'), `${imports}
import { Pool, type Lease } from '${PKG.name}';
// The drop-ins as their drivers' ESM users import them: the module's default export.
import pg from '${PKG.name}/pg';
import mysql from '${PKG.name}/mysql2/promise';
export const dropIns = (): [boolean, string, string] => [new pg.Pool({ max: 1 }) instanceof pg.Pool, typeof pg.Client, typeof mysql.createConnection];
export const modules = [${SUBPATHS.map((_, i) => `m${i}`).join(', ')}];
export async function sample(): Promise<number> {
  const pool = new Pool<{ n: number }>({ max: 1, factory: { create: async () => ({ n: 1 }), destroy: async () => {} } });
  const lease: Lease<{ n: number }> = await pool.acquire();
  const n: number = lease.resource.n;
  lease.release();
  await pool.close();
  return n;
}
`);
    writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
        exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false, types: ['node'],
      },
      files: ['index.ts'],
    }));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer, ...LONG }).catch((error: unknown) => {
      const e = error as { stdout?: string; stderr?: string };
      assert.fail(`the TypeScript consumer does not compile against the published types:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    });
  });
});
