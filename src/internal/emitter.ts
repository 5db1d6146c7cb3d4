/**
 * A small typed event emitter. Unlike `EventEmitter`, a listener that throws cannot break the code that
 * emitted (the pool is mid-transition when it emits), and emitting to an event nobody listens to costs
 * one property read, so the hot path may emit freely.
 */
export type Listener<A> = (payload: A) => void;

type ListenerMap<Events> = { [K in keyof Events]?: Listener<Events[K]>[] };

export class TypedEmitter<Events extends object> {
  #listeners: ListenerMap<Events> = {};
  readonly #onListenerError: (error: unknown, event: string) => void;

  constructor(onListenerError: (error: unknown, event: string) => void) {
    this.#onListenerError = onListenerError;
  }

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    // Copy on write: a listener that removes itself while we iterate must not skip its neighbour.
    this.#listeners[event] = [...(this.#listeners[event] ?? []), listener];
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapper: Listener<Events[K]> = (payload) => {
      this.off(event, wrapper);
      listener(payload);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const list = this.#listeners[event];
    if (list === undefined) return this;
    const next = list.filter((l) => l !== listener);
    if (next.length === 0) {
      // Deleted rather than left empty: hasListeners() is a single `!== undefined` check on the hot path.
      const rest: ListenerMap<Events> = { ...this.#listeners };
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- keys are event names
      delete rest[event];
      this.#listeners = rest;
    } else this.#listeners[event] = next;
    return this;
  }

  /** Resolves with the next payload of `event`. */
  waitFor<K extends keyof Events>(event: K): Promise<Events[K]> {
    return new Promise((resolve) => this.once(event, resolve));
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners[event]?.length ?? 0;
  }

  hasListeners(event: keyof Events): boolean {
    return this.#listeners[event] !== undefined;
  }

  removeAllListeners(): void {
    this.#listeners = {};
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners[event];
    if (list === undefined) return;
    for (const listener of list) {
      try {
        listener(payload);
      } catch (error) {
        this.#onListenerError(error, String(event));
      }
    }
  }
}
