/**
 * The attach's view of ioredis: every client the application opens, grouped by the line that opened it and
 * the server it talks to; a line that keeps opening clients that stay open is reported as a leak.
 */
import { performance } from 'node:perf_hooks';
import type { HousekeepingTask } from '../internal/housekeeper.js';
import { siteOf } from '../adapters/app-site.js';
import early from './early.cjs';

/** A stack captured at a connect (formatted when read). */
interface EarlyStack {
  stack?: string;
}

/** What a client looks like to the watch: ioredis's Redis, read defensively (ioredis 5 and 6). */
interface RedisLike {
  readonly status?: string;
  readonly options?: { host?: string; port?: number; path?: string | null; db?: number };
  readonly condition?: { subscriber?: unknown } | null;
  once(event: string, listener: () => void): unknown;
}

interface Followed {
  readonly stack: EarlyStack;
  readonly since: number;
  readonly target: string;
  /** The application's line, formatted the first time it is needed. */
  site?: string | null;
}

export interface IoredisWatchOptions {
  /** A client open longer than this counts towards its line's total. */
  readonly leakAfterMs: number;
  /** A line is reported once this many of its clients to one server are open (then at twice as many, ...). */
  readonly perSite: number;
  readonly emit: (record: Record<string, unknown>) => void;
}

function targetOf(client: RedisLike): string {
  const o = client.options ?? {};
  const where = typeof o.path === 'string' && o.path !== '' ? o.path : `${o.host ?? 'localhost'}:${o.port ?? 6379}`;
  return `${where} db ${o.db ?? 0}`;
}

/**
 * Follows ioredis clients from their first connect until they end (`quit()`, `disconnect()`, or a
 * connection ioredis gives up on). Returns the housekeeping task that reports growing lines, and the undo.
 */
export function watchIoredis(Redis: unknown, options: IoredisWatchOptions): { task: HousekeepingTask; undo: () => void } | null {
  if (!early.hookIoredis(Redis)) return null;
  const open = new Map<RedisLike, Followed>();
  // Per line and server: how many open clients were last reported, so a report comes again only on doubling.
  const reported = new Map<string, number>();
  early.setIoredisSink((client, stack) => {
    const redis = client as RedisLike;
    if (open.has(redis)) return;
    open.set(redis, { stack, since: performance.now(), target: targetOf(redis) });
    redis.once('end', () => { open.delete(redis); });
  });
  const task: HousekeepingTask = {
    periodMs: Math.max(10, Math.min(1000, Math.floor(options.leakAfterMs / 4))),
    run(): void {
      const now = performance.now();
      const groups = new Map<string, { site: string | null; target: string; live: number; subscribers: number; oldestMs: number }>();
      for (const [client, followed] of open) {
        if (client.status === 'end') {
          open.delete(client);
          continue;
        }
        const ageMs = now - followed.since;
        if (ageMs < options.leakAfterMs) continue;
        followed.site ??= siteOf(followed.stack.stack ?? '');
        const key = `${followed.site ?? '?'}|${followed.target}`;
        let group = groups.get(key);
        if (group === undefined) {
          group = { site: followed.site, target: followed.target, live: 0, subscribers: 0, oldestMs: 0 };
          groups.set(key, group);
        }
        group.live++;
        if (client.condition?.subscriber) group.subscribers++;
        group.oldestMs = Math.max(group.oldestMs, Math.round(ageMs));
      }
      for (const key of reported.keys()) {
        if ((groups.get(key)?.live ?? 0) < options.perSite) reported.delete(key);
      }
      for (const [key, group] of groups) {
        if (group.live < options.perSite || group.live < 2 * (reported.get(key) ?? 0)) continue;
        reported.set(key, group.live);
        options.emit({ client: 'ioredis', kind: 'growing', target: group.target, site: group.site, live: group.live, subscribers: group.subscribers, oldestMs: group.oldestMs });
      }
    },
  };
  return {
    task,
    undo(): void {
      early.unhookIoredis(Redis);
      open.clear();
      reported.clear();
    },
  };
}
