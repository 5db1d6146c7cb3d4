/** The process-wide, unref'd housekeeping timer that runs every pool's background work. */
import { Alarm } from './alarm.js';
import { systemClock, type Clock } from './clock.js';

/**
 * Background work of every pool (idle eviction, lifetimes, keep-alive probes, leak checks, refill) runs
 * on one unref'd timer per clock, shared by the whole process: incident 3 was a thread started per client
 * and never stopped. The timer exists only while at least one task is registered, and sleeps until the
 * earliest task is due rather than polling.
 */
export interface HousekeepingTask {
  readonly periodMs: number;
  run(now: number): void;
}

interface Slot {
  readonly task: HousekeepingTask;
  dueAt: number;
}

const byClock = new WeakMap<Clock, Housekeeper>();

export class Housekeeper {
  readonly #clock: Clock;
  readonly #slots = new Map<HousekeepingTask, Slot>();
  readonly #alarm: Alarm;
  #running = false;

  private constructor(clock: Clock) {
    this.#clock = clock;
    this.#alarm = new Alarm(clock, () => {
      this.#tick();
    }, true);
  }

  /** The process-wide housekeeper of `clock` (the system clock unless a test injects one). */
  static for(clock: Clock = systemClock): Housekeeper {
    let keeper = byClock.get(clock);
    if (keeper === undefined) {
      keeper = new Housekeeper(clock);
      byClock.set(clock, keeper);
    }
    return keeper;
  }

  get taskCount(): number {
    return this.#slots.size;
  }

  /** True while the shared timer is armed. */
  get active(): boolean {
    return this.#alarm.armed;
  }

  register(task: HousekeepingTask): void {
    if (this.#slots.has(task)) return;
    this.#slots.set(task, { task, dueAt: this.#clock.now() + task.periodMs });
    this.#arm();
  }

  unregister(task: HousekeepingTask): void {
    if (!this.#slots.delete(task)) return;
    if (this.#slots.size === 0) this.#disarm();
  }

  #arm(): void {
    if (this.#running) return; // #tick re-arms once every due task has run
    let dueAt = Infinity;
    for (const slot of this.#slots.values()) if (slot.dueAt < dueAt) dueAt = slot.dueAt;
    if (dueAt === Infinity) {
      this.#disarm();
      return;
    }
    this.#alarm.at(dueAt);
  }

  #disarm(): void {
    this.#alarm.clear();
  }

  #tick(): void {
    this.#running = true;
    try {
      const now = this.#clock.now();
      for (const slot of [...this.#slots.values()]) {
        if (slot.dueAt > now || !this.#slots.has(slot.task)) continue;
        slot.dueAt = now + slot.task.periodMs;
        try {
          slot.task.run(now);
        } catch (error) {
          // A task that throws must never stop housekeeping for every other pool in the process.
          process.emitWarning(error instanceof Error ? error : new Error(String(error)), { code: 'LIFEGUARD_HOUSEKEEPING' });
        }
      }
    } finally {
      this.#running = false;
      this.#arm();
    }
  }
}
