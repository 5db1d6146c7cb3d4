import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hintSeconds, idleClose } from '../../src/server/keep-alive.js';

const timeouts = fc.record({
  keepAliveTimeout: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 600_000 })),
  timeout: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 600_000 })),
  idleTimeoutMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 10, max: 600_000 })),
});
const margin = fc.integer({ min: 0, max: 5_000 });

describe('keep-alive hint (properties)', () => {
  it('the idle close is the shortest enabled timeout, and null only when keepAliveTimeout is off', () => {
    fc.assert(fc.property(timeouts, (t) => {
      const close = idleClose(t);
      if (t.keepAliveTimeout === 0) return close === null;
      const enabled = [t.keepAliveTimeout, t.timeout > 0 ? t.timeout : Infinity, t.idleTimeoutMs];
      return close !== null && close.ms === Math.min(...enabled);
    }));
  });

  it('"safe" is the largest whole-second hint at least the margin shorter than the real close, or none', () => {
    fc.assert(fc.property(timeouts, margin, (t, m) => {
      const close = idleClose(t);
      const h = hintSeconds('safe', t, m);
      if (close === null) return h === null;
      if (h === null) return close.ms - m < 1000;
      return h >= 1 && h * 1000 <= close.ms - m && (h + 1) * 1000 > close.ms - m;
    }));
  });

  it('"node" is what node sends, and a number is sent as given', () => {
    fc.assert(fc.property(timeouts, margin, fc.integer({ min: 0, max: 3600 }), (t, m, n) => {
      const node = hintSeconds('node', t, m);
      return (t.keepAliveTimeout === 0 ? node === null : node === Math.floor(t.keepAliveTimeout / 1000)) && hintSeconds(n, t, m) === n;
    }));
  });

  it('node\'s defaults: hint 5 for a 5000 ms close (the race), 4 when safe', () => {
    const t = { keepAliveTimeout: 5000, timeout: 0, idleTimeoutMs: 600_000 };
    assert.equal(hintSeconds('node', t, 1000), 5);
    assert.equal(hintSeconds('safe', t, 1000), 4);
  });
});
