/**
 * The attach's view of node's HTTP agents (incident 1): a line that makes a new keep-alive agent for its
 * requests and never destroys it leaves one idle connection per agent open for as long as the server
 * allows. No request is held, so the request watch sees nothing; the sockets are what grows.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { HousekeepingTask } from '../internal/housekeeper.js';

export interface HttpAgentsWatchOptions {
  /** A connection open longer than this counts towards its line's total. */
  readonly leakAfterMs: number;
  /** A line is reported once this many of its agents hold connections to one origin (then at twice as many, ...). */
  readonly perSite: number;
  readonly emit: (record: Record<string, unknown>) => void;
}

interface Followed {
  readonly agent: object;
  readonly origin: string;
  readonly since: number;
  /** The application's line of the request that first used the socket, formatted when first needed. */
  readonly site: () => string | null;
  formatted?: string | null;
}

export interface HttpAgentsWatch {
  /** Follows the socket of a request that just started, until the socket closes. */
  follow(request: http.ClientRequest, site: () => string | null): void;
  readonly task: HousekeepingTask;
  undo(): void;
}

export function watchHttpAgents(options: HttpAgentsWatchOptions): HttpAgentsWatch {
  const open = new Map<object, Followed>();
  // Per line and origin: how many agents were last reported, so a report comes again only on doubling.
  const reported = new Map<string, number>();
  const adopt = (socket: { destroyed?: boolean; once(event: 'close', listener: () => void): unknown }, followed: Followed): void => {
    if (open.has(socket) || socket.destroyed === true) return;
    open.set(socket, followed);
    socket.once('close', () => { open.delete(socket); });
  };
  return {
    follow(request, site): void {
      const agent = (request as unknown as { agent?: unknown }).agent;
      // The global agents are one per process, whatever the line: one agent per request is the leak.
      if (typeof agent !== 'object' || agent === null || agent === http.globalAgent || agent === https.globalAgent) return;
      const socket = request.socket;
      // A kept-alive socket's next request: followed since its first.
      if (socket !== null && open.has(socket)) return;
      const host = String(request.getHeader('host') ?? request.host);
      const followed: Followed = { agent, origin: `${request.protocol}//${host}`, since: performance.now(), site };
      if (socket !== null) adopt(socket, followed);
      else request.once('socket', (s) => { adopt(s, followed); });
    },
    task: {
      periodMs: Math.max(10, Math.min(1000, Math.floor(options.leakAfterMs / 4))),
      run(): void {
        const now = performance.now();
        const groups = new Map<string, { site: string | null; origin: string; agents: Set<object>; sockets: number; oldestMs: number }>();
        for (const followed of open.values()) {
          const ageMs = now - followed.since;
          if (ageMs < options.leakAfterMs) continue;
          if (followed.formatted === undefined) followed.formatted = followed.site();
          const key = `${followed.formatted ?? '?'}|${followed.origin}`;
          let group = groups.get(key);
          if (group === undefined) {
            group = { site: followed.formatted, origin: followed.origin, agents: new Set(), sockets: 0, oldestMs: 0 };
            groups.set(key, group);
          }
          group.agents.add(followed.agent);
          group.sockets++;
          group.oldestMs = Math.max(group.oldestMs, Math.round(ageMs));
        }
        for (const key of reported.keys()) {
          if ((groups.get(key)?.agents.size ?? 0) < options.perSite) reported.delete(key);
        }
        for (const [key, group] of groups) {
          const agents = group.agents.size;
          if (agents < options.perSite || agents < 2 * (reported.get(key) ?? 0)) continue;
          reported.set(key, agents);
          options.emit({ client: 'http', kind: 'agents', target: group.origin, site: group.site, agents, live: group.sockets, oldestMs: group.oldestMs });
        }
      },
    },
    undo(): void {
      open.clear();
      reported.clear();
    },
  };
}
