/**
 * A binary min-heap ordered by a numeric key. Waiters' deadlines live here so that one timer per pool,
 * armed at the earliest deadline, replaces a timer per waiter (10,000 waiters would mean 10,000 timers).
 */
export class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #key: (item: T) => number;

  constructor(key: (item: T) => number) {
    this.#key = key;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    const k = this.#key(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as T;
      if (this.#key(p) <= k) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      this.#siftDown(last);
    }
    return top;
  }

  /** Drops every item for which `keep` is false; O(n). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.#items.filter(keep);
    this.#items.length = 0;
    for (const item of kept) this.push(item);
  }

  #siftDown(item: T): void {
    const items = this.#items;
    const n = items.length;
    const k = this.#key(item);
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      let childItem = items[left] as T;
      if (right < n && this.#key(items[right] as T) < this.#key(childItem)) {
        child = right;
        childItem = items[right] as T;
      }
      if (this.#key(childItem) >= k) break;
      items[i] = childItem;
      i = child;
    }
    items[i] = item;
  }
}
