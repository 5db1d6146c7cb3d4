import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Deque } from '../../src/internal/deque.js';
import { MinHeap } from '../../src/internal/heap.js';

describe('Deque', () => {
  it('behaves like an array used from both ends, across growth', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('push', 'unshift', 'shift', 'pop', 'remove', 'renew'), fc.integer({ min: 0, max: 50 })), { maxLength: 300 }), (ops) => {
      const deque = new Deque<number>(2);
      const model: number[] = [];
      for (const [op, value] of ops) {
        if (op === 'push') { deque.push(value); model.push(value); }
        if (op === 'unshift') { deque.unshift(value); model.unshift(value); }
        if (op === 'shift') assert.equal(deque.shift(), model.shift());
        if (op === 'pop') assert.equal(deque.pop(), model.pop());
        if (op === 'renew') deque.renew();
        if (op === 'remove') {
          const i = model.indexOf(value);
          assert.equal(deque.remove(value), i >= 0);
          if (i >= 0) model.splice(i, 1);
        }
        assert.equal(deque.length, model.length);
        assert.equal(deque.peekFirst(), model[0]);
        assert.equal(deque.peekLast(), model[model.length - 1]);
      }
      assert.deepEqual(deque.toArray(), model);
    }));
  });

  it('filters and inserts in order', () => {
    const deque = new Deque<number>();
    for (const n of [1, 3, 5, 7]) deque.push(n);
    deque.insertBefore(4, (x) => x > 4);
    assert.deepEqual(deque.toArray(), [1, 3, 4, 5, 7]);
    deque.filter((x) => x % 2 === 1);
    assert.deepEqual(deque.toArray(), [1, 3, 5, 7]);
    assert.equal(deque.at(2), 5);
    deque.clear();
    assert.equal(deque.length, 0);
  });
});

describe('MinHeap', () => {
  it('pops in key order and retains what it is told to', () => {
    fc.assert(fc.property(fc.array(fc.integer()), (values) => {
      const heap = new MinHeap<number>((n) => n);
      for (const v of values) heap.push(v);
      heap.retain((v) => v % 3 !== 0);
      const out: number[] = [];
      let v: number | undefined;
      while ((v = heap.pop()) !== undefined) out.push(v);
      assert.deepEqual(out, values.filter((x) => x % 3 !== 0).sort((a, b) => a - b));
    }));
  });
});
