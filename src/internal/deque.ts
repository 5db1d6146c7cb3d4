/**
 * A growable ring buffer used as both stack and queue. `Array#shift` is O(n) on large arrays, which
 * turns a queue of 10,000 waiters quadratic; this keeps every end operation O(1).
 */
export class Deque<T> {
  #items: (T | undefined)[];
  #head = 0;
  #length = 0;
  #mask: number;

  constructor(initialCapacity = 16) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.#items = new Array<T | undefined>(capacity);
    this.#mask = capacity - 1;
  }

  get length(): number {
    return this.#length;
  }

  /** Slots in the backing array. */
  get capacity(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  unshift(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#head = (this.#head - 1) & this.#mask;
    this.#items[this.#head] = item;
    this.#length++;
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
    return item;
  }

  pop(): T | undefined {
    if (this.#length === 0) return undefined;
    const index = (this.#head + this.#length - 1) & this.#mask;
    const item = this.#items[index];
    this.#items[index] = undefined;
    this.#length--;
    return item;
  }

  peekFirst(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  peekLast(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[(this.#head + this.#length - 1) & this.#mask];
  }

  /** Item `i` counted from the front. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.#length) return undefined;
    return this.#items[(this.#head + i) & this.#mask];
  }

  /** Removes the first occurrence of `item`; O(n), for rare removals from the middle. */
  remove(item: T): boolean {
    for (let i = 0; i < this.#length; i++) {
      if (this.#items[(this.#head + i) & this.#mask] === item) {
        for (let j = i; j < this.#length - 1; j++) {
          this.#items[(this.#head + j) & this.#mask] = this.#items[(this.#head + j + 1) & this.#mask];
        }
        this.#items[(this.#head + this.#length - 1) & this.#mask] = undefined;
        this.#length--;
        return true;
      }
    }
    return false;
  }

  /** Inserts `item` before the first element for which `before(element)` is true, else at the back. */
  insertBefore(item: T, before: (element: T) => boolean): void {
    const items = this.toArray();
    let index = items.findIndex(before);
    if (index < 0) index = items.length;
    items.splice(index, 0, item);
    this.#reset(items);
  }

  /** Keeps only the items for which `keep` is true, preserving order. */
  filter(keep: (item: T) => boolean): void {
    this.#reset(this.toArray().filter(keep));
  }

  /**
   * Moves the items to a new backing array. A long-lived deque's array is in V8's old space, and storing a
   * young object into it (every push of a new waiter) takes the write barrier's slow path, about 55
   * instructions; a new array is young until it survives two scavenges, and stores into it do not.
   */
  renew(): void {
    const items = this.#items;
    const capacity = items.length;
    const fresh = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.#length; i++) {
      const index = (this.#head + i) & this.#mask;
      fresh[index] = items[index];
    }
    this.#items = fresh;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.#length; i++) out.push(this.#items[(this.#head + i) & this.#mask] as T);
    return out;
  }

  clear(): void {
    this.#reset([]);
  }

  #reset(items: T[]): void {
    let capacity = 16;
    while (capacity < items.length) capacity *= 2;
    this.#items = new Array<T | undefined>(capacity);
    for (let i = 0; i < items.length; i++) this.#items[i] = items[i];
    this.#head = 0;
    this.#length = items.length;
    this.#mask = capacity - 1;
  }

  #grow(): void {
    const items = this.toArray();
    const capacity = this.#items.length * 2;
    this.#items = new Array<T | undefined>(capacity);
    for (let i = 0; i < items.length; i++) this.#items[i] = items[i];
    this.#head = 0;
    this.#mask = capacity - 1;
  }
}
