import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optionsFromEnv } from '../../src/register/attach.js';
import { requireService } from '../support/services.js';
import { markers, runApp, type Line } from './helpers.js';

const redis = await requireService('redis');

function leaks(lines: readonly Line[]): Line[] {
  return lines.filter((l) => l.lifeguard === 'leak' && l.client === 'ioredis');
}

describe('lifeguard/register on unmodified ioredis apps', { skip: redis.skip }, () => {
  it('node --import lifeguard/register ioredis-app.mjs: per-request clients and duplicated subscribers named by line, the shared client not', async () => {
    const { stdout, lines } = await runApp('--import', 'ioredis-app.mjs');
    assert.deepEqual(JSON.parse(stdout.trim()), { results: ['x', 'x', 'x', 'x'] });
    const expected = markers('ioredis-app.mjs');
    const found = leaks(lines);
    const perRequest = found.find((l) => l.site?.startsWith(expected.get('ioredis') ?? '?') === true);
    const subscriber = found.find((l) => l.site?.startsWith(expected.get('subscriber') ?? '?') === true);
    assert.ok(perRequest !== undefined && subscriber !== undefined, `a line for each leaking site in ${JSON.stringify(lines)}`);
    assert.equal(perRequest.kind, 'growing');
    assert.match(perRequest.target ?? '', /:\d+ db 11$/);
    assert.ok((perRequest.live ?? 0) >= 3 && (subscriber.subscribers ?? 0) >= 3, JSON.stringify(found));
    // Only the two leaking lines: the one shared client is how ioredis is meant to be used.
    assert.equal(found.every((l) => l === perRequest || l === subscriber || l.site === perRequest.site || l.site === subscriber.site), true, JSON.stringify(found));
  });

  it('node -r lifeguard/register ioredis-app.cjs: clients opened in the first milliseconds, before the ESM part loaded, are followed (register_cjs_misses_early_clients)', async () => {
    const { stdout, lines } = await runApp('-r', 'ioredis-app.cjs');
    assert.deepEqual(JSON.parse(stdout.trim()), { results: ['x', 'x', 'x', 'x'] });
    const leak = leaks(lines).find((l) => l.site?.startsWith(markers('ioredis-app.cjs').get('ioredis') ?? '?') === true);
    assert.ok(leak !== undefined, `a leak at the marked line in ${JSON.stringify(lines)}`);
    assert.equal(leak.live, 4);
  });

  for (const [flag, file] of [['--import', 'ioredis-app.mjs'], ['-r', 'ioredis-app.cjs']] as const) {
    it(`node ${flag} lifeguard/register ${file}: no leak line when the app quits its clients`, async () => {
      const { lines } = await runApp(flag, file, { APP_CLEAN: '1' });
      assert.deepEqual(leaks(lines), []);
    });
  }

  it('LIFEGUARD_ATTACH without ioredis leaves ioredis alone', async () => {
    const { lines } = await runApp('-r', 'ioredis-app.cjs', { LIFEGUARD_ATTACH: 'pg' });
    assert.deepEqual(leaks(lines), []);
  });
});

describe('lifeguard/register ioredis variables', () => {
  it('reads LIFEGUARD_IOREDIS_PER_SITE and refuses a bad one by name', () => {
    assert.deepEqual(optionsFromEnv({ LIFEGUARD_ATTACH: 'ioredis', LIFEGUARD_IOREDIS_PER_SITE: '5' }), { clients: ['ioredis'], ioredisPerSite: 5 });
    assert.throws(() => optionsFromEnv({ LIFEGUARD_IOREDIS_PER_SITE: '0' }), /invalid LIFEGUARD_IOREDIS_PER_SITE: expected an integer >= 1, got "0"/);
  });
});
