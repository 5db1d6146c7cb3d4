/** Incident 1 under the zero-code attach: a line that makes a keep-alive agent per request, never destroyed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optionsFromEnv } from '../../src/register/attach.js';
import { markers, runApp, type Line } from './helpers.js';

function agentLeaks(lines: readonly Line[]): (Line & { agents?: number })[] {
  return lines.filter((l) => l.lifeguard === 'leak' && l.client === 'http' && l.kind === 'agents');
}

describe('lifeguard/register on an app that makes an http.Agent per request', () => {
  for (const flag of ['--import', '-r']) {
    it(`node ${flag} lifeguard/register http-agents-app.mjs: regression: 8 keep-alive agents made per request and never destroyed held 8 idle connections and nothing was reported (register_misses_agent_per_request)`, async () => {
      const { stdout, lines } = await runApp(flag, 'http-agents-app.mjs');
      assert.deepEqual(JSON.parse(stdout.trim()), { statuses: [200], requests: 24 });
      const found = agentLeaks(lines);
      const site = markers('http-agents-app.mjs').get('agents') ?? '?';
      assert.ok(found.length > 0, `an agents line in ${JSON.stringify(lines)}`);
      // The shared and the global agent are never reported: every line names the preheat's.
      for (const leak of found) {
        assert.ok(leak.site?.startsWith(site) === true, `site ${String(leak.site)} should be ${site}`);
        assert.match(leak.target ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      }
      const counts = found.map((l) => l.agents ?? 0);
      assert.ok(counts.every((n, i) => n >= 3 && n <= 8 && (i === 0 || n >= 2 * (counts[i - 1] ?? 0))), `reported at 3 or more agents, again only on doubling, never above the 8 made: ${JSON.stringify(found)}`);
      // The requests themselves were consumed: no 'held' line.
      assert.deepEqual(lines.filter((l) => l.lifeguard === 'leak' && l.kind === 'held'), []);
    });
  }

  it('node --import lifeguard/register http-agents-app.mjs: no line when each agent is destroyed after its request', async () => {
    const { lines } = await runApp('--import', 'http-agents-app.mjs', { APP_CLEAN: '1' });
    assert.deepEqual(lines.filter((l) => l.lifeguard === 'leak'), []);
  });

  it('reads LIFEGUARD_HTTP_AGENTS_PER_SITE and refuses a bad one by name', () => {
    assert.deepEqual(optionsFromEnv({ LIFEGUARD_ATTACH: 'http', LIFEGUARD_HTTP_AGENTS_PER_SITE: '5' }), { clients: ['http'], httpAgentsPerSite: 5 });
    assert.throws(() => optionsFromEnv({ LIFEGUARD_HTTP_AGENTS_PER_SITE: 'x' }), /invalid LIFEGUARD_HTTP_AGENTS_PER_SITE: expected an integer >= 1, got "x"/);
  });
});
