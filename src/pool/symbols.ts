/** The pool's internal entry points for `lifeguard/http`, as symbols: not public API, re-exported by pool.ts. */

/**
 * @internal `pool[kAcquireInto](receiver, options, now)`: `acquire()` for an {@link AcquireReceiver}; `now`,
 * when given, is a clock reading the caller has just taken, used instead of another.
 */
export const kAcquireInto = Symbol('lifeguard.acquireInto');

/**
 * @internal `pool[kHandOff](lease)`: passes a lent resource straight to the oldest waiter when that waiter
 * is a receiver, instead of a release and a new lend: the lease stays out and changes hands (the receiver
 * gets the same lease object). True when handed off; false when it cannot be (nobody waiting, a promise
 * first in line, the pool closing, the resource doomed, revoked or past its lifetime or guard, a reset
 * hook to run, leak tracking on): then release the lease as usual. For `lifeguard/http`, whose requests
 * queue behind busy connections: one pass per request instead of a release, a lend and a new lease.
 */
export const kHandOff = Symbol('lifeguard.handOff');

/** @internal `pool[kWaiting](max)`: the receivers of the acquires waiting, oldest first (promises excluded), at most `max`. */
export const kWaiting = Symbol('lifeguard.waiting');

/**
 * @internal `pool[kReading]`: the pool's latest clock reading. Just after a lease ended it is the reading
 * the release took (precise when the factory has `validate`), which a holder can use as "idle since".
 */
export const kReading = Symbol('lifeguard.reading');

/** @internal `pool[kWithdraw](receiver)`: gives up a receiver's wait without telling it (its request already failed). */
export const kWithdraw = Symbol('lifeguard.withdraw');
