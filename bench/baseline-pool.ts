// The bench's bare baseline pool: an array of free resources and a FIFO of waiters, nothing else.
import { Deque } from '../src/internal/deque.js';

/**
 * The bare minimum a pool must do: an array of free resources and a FIFO of waiters. No timeouts, no
 * validation, no accounting. It is the ceiling every real pool is measured against.
 */
export class BaselinePool<T> {
  readonly #free: T[];
  readonly #waiters = new Deque<(resource: T) => void>();

  constructor(resources: T[]) {
    this.#free = resources;
  }

  acquire(): Promise<T> {
    const resource = this.#free.pop();
    if (resource !== undefined) return Promise.resolve(resource);
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
    });
  }

  release(resource: T): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(resource);
    else this.#free.push(resource);
  }
}
