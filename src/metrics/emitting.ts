import { TypedEmitter, type Listener } from '../internal/emitter.js';

/**
 * Typed `on`/`off` for the metrics classes, on the pool's own emitter: a listener that throws is
 * reported as a process warning and cannot break the evaluation or collection that emitted.
 */
export class Emitting<Events extends object> {
  readonly #events: TypedEmitter<Events>;

  constructor(what: string) {
    this.#events = new TypedEmitter<Events>((error, event) => {
      process.emitWarning(`a listener for ${what} event "${event}" threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, { code: 'LIFEGUARD_LISTENER' });
    });
  }

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    this.#events.on(event, listener);
    return this;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    this.#events.off(event, listener);
    return this;
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    this.#events.emit(event, payload);
  }

  protected hasListeners(event: keyof Events): boolean {
    return this.#events.hasListeners(event);
  }

  protected removeAllListeners(): void {
    this.#events.removeAllListeners();
  }
}
