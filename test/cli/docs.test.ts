import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DOCTOR_OPTIONS } from '../../src/cli/doctor.js';
import { DoctorErrorCodes, FindingCodes } from '../../src/doctor/index.js';

// The repository, from the compiled test (dist/test/cli -> .).
const root = path.resolve(new URL('../../../', import.meta.url).pathname);

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? markdownFiles(full) : name.endsWith('.md') ? [full] : [];
  });
}

/** Durations and lease numbers change from run to run; file:line:col, labels and counts do not. */
function normalize(line: string): string {
  return line.trim().replace(/\b\d+ ms\b/g, 'N ms').replace(/lease #\d+/g, 'lease #N');
}

describe('the docs', () => {
  it('link only to files that exist in the repository (and the package: docs/ and README.md)', () => {
    const broken: string[] = [];
    for (const file of [path.join(root, 'README.md'), ...markdownFiles(path.join(root, 'docs'))]) {
      const text = readFileSync(file, 'utf8');
      const targets = [
        ...[...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!),
        ...[...text.matchAll(/`(\.\.?\/[^`\s]+\.md)`/g)].map((m) => m[1]!),
      ];
      for (const target of targets) {
        if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
        const resolved = path.resolve(path.dirname(file), target.replace(/#.*$/, ''));
        if (!existsSync(resolved) || !resolved.startsWith(root + path.sep)) broken.push(`${path.relative(root, file)} -> ${target}`);
      }
      if (/INCIDENTS\.md/.test(text)) broken.push(`${path.relative(root, file)} -> INCIDENTS.md (not in the repository: link docs/incidents.md)`);
    }
    assert.deepEqual(broken, []);
  });

  it('show the output the demo really prints (README: the acquire timeout, and every demo line it names)', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const run = spawnSync(process.execPath, ['--enable-source-maps', path.join(root, 'dist', 'demo', 'main.js'), '--dashboard-ms', '0'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const output = new Set(run.stdout.split('\n').map(normalize));

    const block = /When the pool runs dry[^\n]*\n+```\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block !== undefined, 'the README shows the acquire timeout of the demo');
    const missing = block.split('\n').filter((line) => line.trim() !== '').map(normalize).filter((line) => !output.has(line));
    assert.deepEqual(missing, [], `README lines the demo does not print; it printed:\n${run.stdout}`);

    // A source location the README quotes from the demo (a leak's acquire site) must be one the demo prints.
    const sites = new Set([...readme.matchAll(/\(demo\/[\w-]+\.ts:\d+:\d+\)/g)].map((m) => m[0]));
    assert.ok(sites.size >= 2);
    for (const site of sites) assert.ok(run.stdout.includes(site), `README names ${site}, the demo prints no such line`);
  });

  it('docs/doctor.md documents every option of lifeguard doctor and every code the doctor emits, each code with its page', () => {
    const doc = readFileSync(path.join(root, 'docs', 'doctor.md'), 'utf8');
    // Option rows of the command's table: | `--name ...` | or | `-h`, `--help` |
    const rows = new Set([...doc.matchAll(/^\| `(?:-\w`, `)?--([a-z-]+)[^|]*\|/gm)].map((m) => m[1]));
    const undocumented = Object.keys(DOCTOR_OPTIONS).filter((name) => !rows.has(name));
    assert.deepEqual(undocumented, [], 'options of lifeguard doctor without a row in docs/doctor.md');
    const codes = [...Object.values(FindingCodes), ...Object.values(DoctorErrorCodes)];
    assert.deepEqual(codes.filter((code) => !doc.includes(`[\`${code}\`](./diagnostics/${code}.md)`)), [], 'codes not linked from docs/doctor.md');
    assert.deepEqual(codes.filter((code) => !existsSync(path.join(root, 'docs', 'diagnostics', `${code}.md`))), [], 'codes without a page');
    // And nothing the doctor's sources name is missing from those lists.
    const named = new Set<string>();
    for (const dir of ['src/doctor', 'src/cli']) {
      for (const file of readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.ts'))) {
        for (const m of readFileSync(path.join(root, dir, file), 'utf8').matchAll(/\bLG_DOCTOR_[A-Z_]+[A-Z]\b/g)) named.add(m[0]);
      }
    }
    assert.deepEqual([...named].filter((code) => !(codes as string[]).includes(code)), [], 'codes in the sources but not in FindingCodes or DoctorErrorCodes');
  });
});
