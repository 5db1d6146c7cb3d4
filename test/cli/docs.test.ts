import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

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
});
