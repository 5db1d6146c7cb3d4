/** The line of waiting acquires (or several, by priority): arrival order, deadlines on one alarm, abort signals, lazy deletion. */
import { Alarm } from './alarm.js';
import type { Clock } from './clock.js';
import { Deque } from './deque.js';
import { MinHeap } from './heap.js';

/** What the queue needs of a waiter; the owner's waiter type adds what it hands out. */
export interface QueuedWaiter {
  /**
   * Monotonic ms of the clock from which the deadline counts. NaN while the owner does not know it yet
   * (the pool stamps a loop iteration's waiters together, once they have all queued): such a waiter
   * cannot expire, and the owner calls `rearm()` once it knows.
   */
  readonly enqueuedAt: number;
  /** The deadline is `enqueuedAt + timeoutMs` (not a field: one boxed number less per waiter); Infinity for none. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

export interface WaitQueueOwner<W> {
  /** `waiter`'s deadline passed: settle it (`queue.settle`) and tell it. */
  expired(waiter: W, now: number): void;
  /** `waiter`'s signal fired while it waited. */
  aborted(waiter: W): void;
  now(): number;
}

/**
 * First-in first-out, with lazy deletion: a settled waiter stays in the line until it reaches the front
 * (or a compaction), so settling is O(1). Deadlines: waiters with the default timeout arrive in deadline
 * order. While every waiter has it (the common case, and the contended hot path) the line itself is the
 * deadline order and nothing else is kept; once a waiter with its own timeout arrives, the default ones
 * also go to a deque in arrival order and the others to a heap, until nobody waits. One ref'd alarm (a
 * caller awaits its timeout) is armed for the earliest and dropped when nobody waits, so an idle owner
 * never holds the process open.
 *
 * A queue may have several lines, by priority (the generic-pool compat layer's `priorityRange`): `next()`
 * serves the first line that has a waiter, and every line's deadlines share the one alarm.
 */
/** Adds to the first line between two renewals of its array (see `WaitQueue.add`). */
const RENEW_EVERY = 4096;

export class WaitQueue<W extends QueuedWaiter> {
  /** Waiters not yet settled, in every line. */
  pending = 0;
  /** The first line: the pool's only one, or the highest priority. */
  readonly #line = new Deque<W>();
  /** Adds to the first line until it gets a new array (see `add`). */
  #renewIn = RENEW_EVERY;
  /** The lines after the first, by priority; null with one line (the pool's). */
  readonly #lower: Deque<W>[] | null;
  /** While #mixed: the waiters with the default timeout and a deadline, whose deadlines are in arrival order. */
  readonly #inOrder = new Deque<W>();
  /** Waiters with a per-call timeout and a deadline, ordered by deadline. */
  readonly #byDeadline = new MinHeap<W>(deadlineOf);
  /**
   * False while there is one line and every waiter in it has the default timeout: the line is then in
   * deadline order, and #inOrder and #byDeadline stay empty (one push and one shift less per waiter).
   */
  #mixed: boolean;
  /** Several lines, or no default timeout (NaN): always #mixed. */
  readonly #alwaysMixed: boolean;
  readonly #defaultTimeoutMs: number;
  readonly #owner: WaitQueueOwner<W>;
  readonly #alarm: Alarm;

  /** `lines`: how many priority lines (1: one first-in first-out line). */
  constructor(clock: Clock, defaultTimeoutMs: number, owner: WaitQueueOwner<W>, lines = 1) {
    this.#lower = lines > 1 ? Array.from({ length: lines - 1 }, () => new Deque<W>()) : null;
    this.#alwaysMixed = this.#mixed = lines > 1 || Number.isNaN(defaultTimeoutMs);
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#owner = owner;
    this.#alarm = new Alarm(clock, () => {
      this.#onAlarm();
    }, false);
  }

  /** Puts `waiter` at the end of its line (0 is the first), listening to its signal and arming its deadline. */
  add(waiter: W, line = 0): void {
    if (line === 0) {
      // Every few thousand waiters the line gets a new (young) array, so that pushing a young waiter
      // does not take the write barrier's slow path (see Deque.renew): under contention that is one
      // slow path per acquire, against one copy of the line per RENEW_EVERY. Only a small array: a
      // large one (10,000 waiters at once) is costly to allocate and scan young, and V8 puts one above
      // 128 KiB in its large-object space (callgrind, 10,000 waiters: 6,863 instructions per op
      // without renewal, 8,719 with it at every size).
      if (--this.#renewIn === 0) {
        this.#renewIn = RENEW_EVERY;
        if (this.#line.capacity <= RENEW_EVERY) this.#line.renew();
      }
      this.#line.push(waiter);
    } else (this.#lower?.[line - 1] as Deque<W>).push(waiter);
    this.pending++;
    if (waiter.signal !== undefined) this.#listen(waiter, waiter.signal);
    const deadline = deadlineOf(waiter);
    if (waiter.timeoutMs === this.#defaultTimeoutMs) {
      if (deadline === Infinity) return;
      if (this.#mixed) this.#inOrder.push(waiter);
    } else {
      if (!this.#mixed) this.#mix(waiter);
      if (deadline === Infinity) return;
      this.#byDeadline.push(waiter);
    }
    if (deadline < this.#alarm.armedAt) this.#alarm.at(deadline);
  }

  // Its own function: the listener's closure captures `waiter`, and in `add` that capture would give every
  // call a context object, signal or not (callgrind, 1,000 concurrent: one allocation per acquire).
  #listen(waiter: W, signal: AbortSignal): void {
    waiter.onAbort = () => {
      if (!waiter.settled) this.#owner.aborted(waiter);
    };
    signal.addEventListener('abort', waiter.onAbort, { once: true });
  }

  /** A waiter with its own timeout joins a line of default ones: from now on their deadlines are kept apart. */
  #mix(newcomer: W): void {
    this.#mixed = true;
    const line = this.#line;
    for (let i = 0; i < line.length; i++) {
      const waiter = line.at(i) as W;
      if (waiter !== newcomer && !waiter.settled && deadlineOf(waiter) !== Infinity) this.#inOrder.push(waiter);
    }
  }

  /** The oldest waiter still waiting in the first line that has one, discarding settled ones on the way. */
  next(): W | undefined {
    let waiter: W | undefined;
    while ((waiter = this.#line.peekFirst()) !== undefined && waiter.settled) this.#line.shift();
    if (waiter === undefined && this.#lower !== null && this.pending > 0) return this.#nextLower(this.#lower);
    return waiter;
  }

  #nextLower(lines: Deque<W>[]): W | undefined {
    for (const line of lines) {
      let waiter: W | undefined;
      while ((waiter = line.peekFirst()) !== undefined && waiter.settled) line.shift();
      if (waiter !== undefined) return waiter;
    }
    return undefined;
  }

  /**
   * Takes the waiter `next()` would return out of the queue, settled (`settle` for the head, in one
   * step): the contended hand-out path, where a separate `next()` and `settle()` re-read the line twice.
   */
  take(): W | undefined {
    const line = this.#line;
    let waiter = line.shift();
    while (waiter?.settled === true) waiter = line.shift();
    if (waiter === undefined) {
      if (this.#lower === null || this.pending === 0) return undefined;
      waiter = this.#nextLower(this.#lower);
      if (waiter === undefined) return undefined;
      this.settle(waiter);
      return waiter;
    }
    waiter.settled = true;
    this.pending--;
    if (waiter.onAbort !== undefined || this.#mixed || this.pending === 0) this.#settled(waiter);
    return waiter;
  }

  /** Ends `waiter`'s wait (bookkeeping only: telling it is the owner's job). */
  settle(waiter: W): void {
    waiter.settled = true;
    this.pending--;
    if (this.#line.peekFirst() === waiter) this.#line.shift();
    this.#settled(waiter);
    if (this.pending === 0) return;
    if (this.#line.length > 1024 && this.#line.length > 4 * this.pending) {
      this.#compact();
    } else if (this.#lower !== null) {
      let queued = this.#line.length;
      for (const line of this.#lower) queued += line.length;
      if (queued > 1024 && queued > 4 * this.pending) this.#compact();
    }
  }

  /** The rest of settling `waiter`, out of the line already: its signal, its deadline, and an empty queue's alarm. */
  #settled(waiter: W): void {
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (this.#mixed) {
      if (this.#inOrder.peekFirst() === waiter) this.#inOrder.shift();
      else if (this.#byDeadline.peek() === waiter) this.#byDeadline.pop();
    }
    if (this.pending === 0) {
      // Nobody waits: drop the (ref'd) alarm, and the deadlines kept apart (all settled).
      if (this.#alarm.armed) this.#alarm.clear();
      if (this.#mixed && !this.#alwaysMixed) {
        this.#mixed = false;
        if (this.#inOrder.length > 0) this.#inOrder.clear();
        if (this.#byDeadline.size > 0) this.#byDeadline.retain(() => false);
      }
    }
  }

  /** Keeps the dead weight bounded when many give up at once. */
  #compact(): void {
    this.#line.filter((w) => !w.settled);
    if (this.#lower !== null) for (const line of this.#lower) line.filter((w) => !w.settled);
    this.#inOrder.filter((w) => !w.settled);
    this.#byDeadline.retain((w) => !w.settled);
  }

  /** Calls `visit` with each waiting waiter in the order `next()` serves them, until it returns true. A scan: for failure paths. */
  scan(visit: (waiter: W) => boolean | undefined): void {
    for (const line of this.#lower === null ? [this.#line] : [this.#line, ...this.#lower]) {
      for (let i = 0; i < line.length; i++) {
        const waiter = line.at(i) as W;
        if (!waiter.settled && visit(waiter) === true) return;
      }
    }
  }

  #earliest(): W | undefined {
    if (!this.#mixed) {
      // One line, every waiter with the default timeout: the oldest has the earliest deadline.
      const head = this.next();
      return head === undefined || deadlineOf(head) === Infinity ? undefined : head;
    }
    let first: W | undefined;
    while ((first = this.#inOrder.peekFirst()) !== undefined && first.settled) this.#inOrder.shift();
    let custom: W | undefined;
    while ((custom = this.#byDeadline.peek()) !== undefined && custom.settled) this.#byDeadline.pop();
    if (first === undefined) return custom;
    if (custom === undefined) return first;
    // A deadline not known yet (NaN) is no earlier than any known one.
    return deadlineOf(first) <= deadlineOf(custom) ? first : custom;
  }

  /** Deadlines that were not known (`enqueuedAt` NaN) now are: arms the alarm for the earliest. */
  rearm(): void {
    const top = this.#earliest();
    if (top !== undefined) this.#alarm.at(deadlineOf(top));
  }

  #onAlarm(): void {
    const now = this.#owner.now();
    let top: W | undefined;
    while ((top = this.#earliest()) !== undefined && deadlineOf(top) <= now) this.#owner.expired(top, now);
    if (top !== undefined) this.#alarm.at(deadlineOf(top), now);
  }
}

/** Infinity for no timeout, NaN for a deadline not known yet (see `QueuedWaiter.enqueuedAt`). */
function deadlineOf(waiter: QueuedWaiter): number {
  return waiter.timeoutMs === Infinity ? Infinity : waiter.enqueuedAt + waiter.timeoutMs;
}
