/** The pool's `budget` option: a factory wrapper that takes a permit before each create and gives it back after each destroy. */
import type { Factory, ResolvedPoolOptions } from './options.js';
import type { Budget, Permit } from '../budget/budget.js';

interface Paid {
  readonly permit: Permit;
  readonly onLost: () => void;
}

/**
 * The pool's `budget` option: wraps the factory so that `create` first takes a permit (waiting no
 * longer than the create itself may: `ctx.signal`) and `destroy` gives it back once the resource is
 * destroyed, or at once when creation fails. A permit reported lost revokes its resource at once, lent
 * or not: without the permit the connection has no right to exist, and another process may take it.
 */
/** How many of a pool's creations wait for a permit right now (for stats() and the timeout message). */
export interface PermitWaits {
  creates: number;
}

export function budgetedFactory<T>(factory: Factory<T>, budget: Budget, waits: PermitWaits = { creates: 0 }): Factory<T> {
  // A stack per resource value: a factory may hand out equal primitives, each paid for separately.
  const paid = new Map<T, Paid[]>();
  const wrapped: Factory<T> = {
    async create(context) {
      // In line for a permit only while a waiter needs this connection: a place in a fleet-wide line that
      // nobody here needs any more would delay other processes.
      waits.creates++;
      let permit: Permit;
      try {
        permit = await budget.acquire({ signal: AbortSignal.any([context.signal, context.unwanted]) });
      } finally {
        waits.creates--;
      }
      // Never lent past the time the permit is known to be held (RedisBudget moves it on each refresh).
      context.guard(permit);
      const onLost = (): void => {
        context.revoke(permit.lost.reason);
      };
      permit.lost.addEventListener('abort', onLost, { once: true });
      // Lost before we listened (Redis went away during the grant): an abort listener would never fire.
      if (permit.lost.aborted) onLost();
      let resource: T;
      try {
        resource = await factory.create(context);
      } catch (error) {
        permit.lost.removeEventListener('abort', onLost);
        permit.release();
        throw error;
      }
      const stack = paid.get(resource);
      if (stack === undefined) paid.set(resource, [{ permit, onLost }]);
      else stack.push({ permit, onLost });
      return resource;
    },
    async destroy(resource) {
      const stack = paid.get(resource);
      const entry = stack?.pop();
      if (stack?.length === 0) paid.delete(resource);
      try {
        await factory.destroy(resource);
      } finally {
        // Only once the connection is really gone: a destroy that never settles keeps its permit, so the
        // cap still counts a connection that may still be open.
        if (entry !== undefined) {
          entry.permit.lost.removeEventListener('abort', entry.onLost);
          entry.permit.release();
        }
      }
    },
  };
  const out = wrapped as { -readonly [K in keyof Factory<T>]: Factory<T>[K] };
  if (factory.validate !== undefined) out.validate = factory.validate.bind(factory);
  if (factory.reset !== undefined) out.reset = factory.reset.bind(factory);
  if (factory.socket !== undefined) out.socket = factory.socket.bind(factory);
  return out;
}

/** Applies the `budget` option to resolved pool options (the Pool constructor's single hook). */
export function withBudget<T>(options: ResolvedPoolOptions<T>, waits: PermitWaits): ResolvedPoolOptions<T> {
  if (options.budget === undefined) return options;
  return Object.freeze({ ...options, factory: budgetedFactory(options.factory, options.budget, waits) });
}

/** What a pool with a budget says about it: the budget's own view, and this pool's creations in its line. */
export interface PoolBudgetStats {
  readonly key: string;
  readonly limit: number;
  /** Permits this process holds (every pool sharing the budget object). */
  readonly heldHere: number;
  /** Acquires of this process waiting for a permit. */
  readonly waitingHere: number;
  /** This pool's creations waiting for a permit now. */
  readonly createsWaiting: number;
  /** Permits held by the whole fleet, as this process last saw them (no extra round trip: see `BudgetStats.fleet`). */
  readonly heldInFleet: number;
  /** Acquires waiting in the whole fleet, likewise. */
  readonly waitingInFleet: number;
  /** How old the two fleet figures are, in ms (0 for an in-process budget; null before the first round trip to the store). */
  readonly fleetAgeMs: number | null;
}

export function budgetStatsOf(budget: Budget, waits: PermitWaits): PoolBudgetStats {
  const s = budget.stats();
  return {
    key: s.key, limit: s.limit, heldHere: s.held, waitingHere: s.waiting, createsWaiting: waits.creates,
    heldInFleet: s.fleet.held, waitingInFleet: s.fleet.waiting, fleetAgeMs: s.fleet.ageMs === null ? null : Math.round(s.fleet.ageMs),
  };
}

/** The budget line of the acquire-timeout message. */
export function describeBudget(b: PoolBudgetStats): string {
  return `budget "${b.key}": ${b.createsWaiting} creation${b.createsWaiting === 1 ? '' : 's'} of this pool waiting for a permit; limit=${b.limit} held here=${b.heldHere} waiting here=${b.waitingHere} held in fleet=${b.heldInFleet} waiting in fleet=${b.waitingInFleet} (${b.fleetAgeMs === null ? 'fleet figures not read yet' : `fleet figures ${b.fleetAgeMs} ms old`})`;
}
