/** The line of waiting acquires: arrival order, deadlines on one alarm, abort signals, lazy deletion. */
import { Alarm } from './alarm.js';
import type { Clock } from './clock.js';
import { Deque } from './deque.js';
import { MinHeap } from './heap.js';

/** What the queue needs of a waiter; the owner's waiter type adds what it hands out. */
export interface QueuedWaiter {
  /** Monotonic ms of the clock. */
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
 * order and sit in a deque; the others in a heap; one ref'd alarm (a caller awaits its timeout) is armed
 * for the earliest and dropped when nobody waits, so an idle owner never holds the process open.
 */
export class WaitQueue<W extends QueuedWaiter> {
  /** Waiters not yet settled. */
  pending = 0;
  readonly #line = new Deque<W>();
  /** Waiters with the default timeout: their deadlines are already in arrival order. */
  readonly #inOrder = new Deque<W>();
  /** Waiters with a per-call timeout, ordered by deadline. */
  readonly #byDeadline = new MinHeap<W>(deadlineOf);
  readonly #defaultTimeoutMs: number;
  readonly #owner: WaitQueueOwner<W>;
  readonly #alarm: Alarm;

  constructor(clock: Clock, defaultTimeoutMs: number, owner: WaitQueueOwner<W>) {
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#owner = owner;
    this.#alarm = new Alarm(clock, () => {
      this.#onAlarm();
    }, false);
  }

  /** Puts `waiter` at the end of the line, listening to its signal and arming its deadline. */
  add(waiter: W): void {
    this.#line.push(waiter);
    this.pending++;
    const signal = waiter.signal;
    if (signal !== undefined) {
      waiter.onAbort = () => {
        if (!waiter.settled) this.#owner.aborted(waiter);
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    const deadline = waiter.enqueuedAt + waiter.timeoutMs;
    if (deadline === Infinity) return;
    if (waiter.timeoutMs === this.#defaultTimeoutMs) this.#inOrder.push(waiter);
    else this.#byDeadline.push(waiter);
    if (deadline < this.#alarm.armedAt) this.#alarm.at(deadline);
  }

  /** The oldest waiter still waiting, discarding settled ones on the way. */
  next(): W | undefined {
    let waiter: W | undefined;
    while ((waiter = this.#line.peekFirst()) !== undefined && waiter.settled) this.#line.shift();
    return waiter;
  }

  /** Ends `waiter`'s wait (bookkeeping only: telling it is the owner's job). */
  settle(waiter: W): void {
    waiter.settled = true;
    this.pending--;
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (this.#line.peekFirst() === waiter) this.#line.shift();
    if (this.#inOrder.peekFirst() === waiter) this.#inOrder.shift();
    else if (this.#byDeadline.peek() === waiter) this.#byDeadline.pop();
    if (this.pending === 0) {
      // Nobody waits: drop the (ref'd) alarm.
      if (this.#alarm.armed) this.#alarm.clear();
    } else if (this.#line.length > 1024 && this.#line.length > 4 * this.pending) {
      // Keep the dead weight bounded when many give up at once.
      this.#line.filter((w) => !w.settled);
      this.#inOrder.filter((w) => !w.settled);
      this.#byDeadline.retain((w) => !w.settled);
    }
  }

  /** Calls `visit` with each waiting waiter, oldest first, until it returns true. A scan: for failure paths. */
  scan(visit: (waiter: W) => boolean | undefined): void {
    const line = this.#line;
    for (let i = 0; i < line.length; i++) {
      const waiter = line.at(i) as W;
      if (!waiter.settled && visit(waiter) === true) return;
    }
  }

  /** The earliest deadline among the waiters (Infinity when none has one). */
  earliestDeadline(): number {
    const first = this.#earliest();
    return first === undefined ? Infinity : deadlineOf(first);
  }

  #earliest(): W | undefined {
    let first: W | undefined;
    while ((first = this.#inOrder.peekFirst()) !== undefined && first.settled) this.#inOrder.shift();
    let custom: W | undefined;
    while ((custom = this.#byDeadline.peek()) !== undefined && custom.settled) this.#byDeadline.pop();
    if (first === undefined) return custom;
    if (custom === undefined) return first;
    return deadlineOf(custom) < deadlineOf(first) ? custom : first;
  }

  #onAlarm(): void {
    const now = this.#owner.now();
    let top: W | undefined;
    while ((top = this.#earliest()) !== undefined && deadlineOf(top) <= now) this.#owner.expired(top, now);
    if (top !== undefined) this.#alarm.at(deadlineOf(top), now);
  }
}

function deadlineOf(waiter: QueuedWaiter): number {
  return waiter.enqueuedAt + waiter.timeoutMs;
}
