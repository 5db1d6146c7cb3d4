import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { connectionCloses, keepAliveTimeoutOf, readConnectionHeaderStrings, readConnectionHeaders, type PooledSocket } from '../../src/http/connection.js';

/** What the header reader touches of a connection: whether it may be reused, and its keep-alive hint. */
function connection(): PooledSocket & { hints: number[][] } {
  const hints: number[][] = [];
  return {
    reusable: true,
    hints,
    keepAliveHint(seconds: number, marginMs: number, now: number) {
      hints.push([seconds, marginMs, now]);
    },
  } as unknown as PooledSocket & { hints: number[][] };
}

/** The regular expression the byte reader replaced: it must agree with it on every value (hints clamped at 2^31 - 1 s). */
function byRegex(value: string): number {
  const match = /timeout[ \t]*=[ \t]*(\d+)/i.exec(value);
  return match === null ? -1 : Math.min(Number(match[1]), 2 ** 31 - 1);
}

/** Any string of bytes, as node hands header values to the agent (latin1: one character per byte). */
const bytes = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.nat(255).map((c) => String.fromCharCode(c)), maxLength });

describe('connection headers', () => {
  it('keep-alive-close token list: reads Connection as a comma-separated token list, both readers alike', () => {
    const cases: [string, boolean][] = [
      ['close', true], ['Close', true], ['keep-alive, close', true], ['close, keep-alive', true], ['keep-alive,close', true],
      [' upgrade ,\tCLOSE\t', true], ['keep-alive', false], ['closed', false], ['xclose', false], ['keep-alive, closes', false], ['', false],
    ];
    for (const [value, closes] of cases) {
      assert.equal(connectionCloses(value), closes, JSON.stringify(value));
      const viaBytes = connection();
      readConnectionHeaders(viaBytes, [Buffer.from('Connection'), Buffer.from(value)], 1000, 0);
      const viaStrings = connection();
      readConnectionHeaderStrings(viaStrings, ['connection', value], 1000, 0);
      assert.equal(viaBytes.reusable, !closes, `bytes ${JSON.stringify(value)}`);
      assert.equal(viaStrings.reusable, !closes, `strings ${JSON.stringify(value)}`);
    }
  });

  it('reads Keep-Alive timeouts the way servers write them', () => {
    assert.equal(keepAliveTimeoutOf('timeout=5'), 5);
    assert.equal(keepAliveTimeoutOf('timeout=60, max=1000'), 60);
    assert.equal(keepAliveTimeoutOf('max=100, Timeout = 7'), 7);
    assert.equal(keepAliveTimeoutOf('TIMEOUT=\t12'), 12);
    assert.equal(keepAliveTimeoutOf('max=100'), -1);
    assert.equal(keepAliveTimeoutOf('timeout='), -1);
    assert.equal(keepAliveTimeoutOf('timeout=abc, timeout=3'), 3);
    assert.equal(keepAliveTimeoutOf('timeout'), -1);
  });

  it('agrees with /timeout[ \\t]*=[ \\t]*(\\d+)/i on any value, clamped at 2^31 - 1', () => {
    const token = fc.oneof(fc.constantFrom('timeout', 'TimeOut', 'timeou', '=', ' ', '\t', '\xa0', '\v', ',', 'max', '5', '60', '007', '99999999999999999999', 'x', 't'), bytes(3));
    fc.assert(fc.property(fc.array(token, { maxLength: 12 }), (parts) => {
      const value = parts.join('');
      assert.equal(keepAliveTimeoutOf(value), byRegex(value));
    }), { numRuns: 2000 });
  });

  it('applies Connection: close and Keep-Alive in any case, from buffers and from strings', () => {
    const raw = ['Content-Length', '3', 'CONNECTION', 'Close', 'keep-alive', 'timeout=9'];
    const fromBuffers = connection();
    readConnectionHeaders(fromBuffers, raw.map((s) => Buffer.from(s)), 1000, 42);
    assert.equal(fromBuffers.reusable, false);
    assert.deepEqual(fromBuffers.hints, [[9, 1000, 42]]);
    const fromStrings = connection();
    readConnectionHeaderStrings(fromStrings, raw, 1000, 42);
    assert.equal(fromStrings.reusable, false);
    assert.deepEqual(fromStrings.hints, [[9, 1000, 42]]);
  });

  it('ignores look-alike headers and values, from buffers and from strings', () => {
    // Same lengths as the real names and values, one letter off; and "keep-alive" as a Connection value.
    const raw = ['Connectiom', 'close', 'Keep-Alivf', 'timeout=1', 'Connection', 'closed', 'Connection', 'keep-alive', 'Set-Cookie', 'timeout=2', 'Bonnection', 'close', 'Jeep-Alive', 'timeout=3'];
    const fromBuffers = connection();
    readConnectionHeaders(fromBuffers, raw.map((s) => Buffer.from(s)), 1000, 0);
    assert.equal(fromBuffers.reusable, true);
    assert.deepEqual(fromBuffers.hints, []);
    const fromStrings = connection();
    readConnectionHeaderStrings(fromStrings, raw, 1000, 0);
    assert.equal(fromStrings.reusable, true);
    assert.deepEqual(fromStrings.hints, []);
  });

  it('reads the same from buffers (the dispatcher) as from strings (the agent), for any headers', () => {
    const name = fc.constantFrom('Connection', 'connection', 'CONNECTION', 'Keep-Alive', 'keep-alive', 'KEEP-ALIVE', 'Content-Length', 'Date', 'Connectiom', 'Jeep-Alive');
    const value = fc.oneof(fc.constantFrom('close', 'Close', 'keep-alive', 'closed', ' close', 'timeout=5', 'timeout = 60, max=9', 'max=1', 'TimeOut=\t007', 'timeout\xa0=5', 'timeout=123456789012345678901'), bytes(16));
    fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), (pairs) => {
      const raw = pairs.flat();
      const fromBuffers = connection();
      readConnectionHeaders(fromBuffers, raw.map((s) => Buffer.from(s, 'latin1')), 1000, 7);
      const fromStrings = connection();
      readConnectionHeaderStrings(fromStrings, raw, 1000, 7);
      assert.equal(fromBuffers.reusable, fromStrings.reusable);
      assert.deepEqual(fromBuffers.hints, fromStrings.hints);
    }), { numRuns: 2000 });
  });
});
