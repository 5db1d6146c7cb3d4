import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { CHANNELS, Pool, pools, subscribe, type ChannelMessages, type ChannelName, type PoolOptions } from '../../src/index.js';
import { FakeClock, flush } from '../support/fake-clock.js';
import { TestFactory, type TestResource } from '../support/factory.js';

function setup(options: Partial<PoolOptions<TestResource>> = {}): { pool: Pool<TestResource>; factory: TestFactory; clock: FakeClock } {
  const factory = new TestFactory();
  const clock = new FakeClock();
  const pool = new Pool<TestResource>({ factory: factory.basic(), clock, ...options });
  return { pool, factory, clock };
}

/** Records every message of every channel, for one pool name only (other tests' pools publish too). */
function record(only: string): { events: { channel: ChannelName; message: ChannelMessages[ChannelName] }[]; stop: () => void } {
  const events: { channel: ChannelName; message: ChannelMessages[ChannelName] }[] = [];
  const stops = (Object.keys(CHANNELS) as ChannelName[]).map((channel) =>
    subscribe(channel, (message) => {
      if (message.name === only) events.push({ channel, message });
    }));
  return { events, stop: () => { for (const s of stops) s(); } };
}

describe('diagnostics_channel', () => {
  it('publishes every state change with the pool and its name, fast-path acquires included', async () => {
    let pool: Pool<TestResource> | undefined;
    const { events, stop } = record('dc');
    try {
      const factory = new TestFactory();
      const clock = new FakeClock();
      pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'dc', max: 1, idleTimeoutMs: 1000, leakWarnAfterMs: 5000, leakDetection: 'full', acquireTimeoutMs: 100 });
      pool.on('leak', () => undefined); // keeps the structured stderr line out of the test output
      const a = await pool.acquire(); // queued: nothing idle yet, a create runs
      a.release();
      const b = await pool.acquire(); // fast path
      const waiting = pool.acquire().catch((e: unknown) => e);
      await flush();
      await clock.advance(100); // the waiter times out
      await waiting;
      await clock.advance(5000); // b is held past leakWarnAfterMs
      b.release(); // unleaked
      await clock.advance(2000); // idle eviction
      await pool.close();
      const names = events.map((e) => e.channel);
      assert.deepEqual(names, ['open', 'queue', 'create', 'acquire', 'release', 'acquire', 'queue', 'timeout', 'leak', 'release', 'unleaked', 'destroy', 'evict', 'close']);
      for (const { message } of events) {
        assert.equal(message.pool, pool);
        assert.equal(message.name, 'dc');
      }
      const acquires = events.filter((e) => e.channel === 'acquire').map((e) => e.message as ChannelMessages['acquire']);
      assert.equal(acquires[1]?.waitedMs, 0, 'the fast path reports no wait');
      const evict = events.find((e) => e.channel === 'evict')?.message as ChannelMessages['evict'];
      assert.equal(evict.reason, 'idle');
      const leak = events.find((e) => e.channel === 'leak')?.message as ChannelMessages['leak'];
      assert.equal(leak.report.kind, 'held');
      assert.match(leak.report.site ?? '', /diagnostics\.test\.[jt]s/);
      const release = events.filter((e) => e.channel === 'release').map((e) => e.message as ChannelMessages['release']);
      assert.equal(release[1]?.heldMs, 5100);
    } finally {
      stop();
    }
  });

  it('publishes create errors and destroys of lent resources without calling them evictions', async () => {
    let pool: Pool<TestResource> | undefined;
    const { events, stop } = record('dc2');
    try {
      const factory = new TestFactory();
      const clock = new FakeClock();
      factory.failCreates = 1;
      pool = new Pool<TestResource>({ factory: factory.basic(), clock, name: 'dc2', max: 1 });
      const pending = pool.acquire();
      await flush();
      await clock.advance(200); // past the first backoff
      const lease = await pending;
      lease.destroy(new Error('broken'));
      await flush();
      await pool.close();
      const names = events.map((e) => e.channel);
      assert.ok(names.includes('createError'));
      const destroy = events.find((e) => e.channel === 'destroy')?.message as ChannelMessages['destroy'];
      assert.equal(destroy.reason, 'error');
      assert.ok(!names.includes('evict'), 'a lent resource destroyed by its holder is not an eviction');
    } finally {
      stop();
    }
  });
});

describe('events and channels', () => {
  it('agree: every event is published on its channel and every channel (but open) is an event, the fast path included', async () => {
    const factory = new TestFactory();
    const clock = new FakeClock();
    const base = factory.basic();
    let failDestroy = false;
    const pool = new Pool<TestResource>({
      name: 'twins',
      clock,
      max: 1,
      idleTimeoutMs: 1000,
      factory: { ...base, destroy: (r) => { if (failDestroy) throw new Error('destroy broke'); return base.destroy(r); } },
    });
    const seenEvents: string[] = [];
    const { events: published, stop } = record('twins');
    try {
      for (const name of ['create', 'createError', 'destroy', 'evict', 'destroyError', 'acquire', 'release', 'queue', 'timeout', 'validationFailed', 'leak', 'unleaked', 'close'] as const) {
        pool.on(name, () => { seenEvents.push(name); });
      }
      const a = await pool.acquire(); // queued
      a.release();
      const b = await pool.acquire(); // fast path: an acquire event too
      b.release();
      failDestroy = true;
      await clock.advance(2000); // idle eviction whose destroy fails
      await flush();
      await pool.close();
      const channelNames = published.map((e) => e.channel).filter((c) => c !== 'open');
      assert.deepEqual(seenEvents, channelNames);
      assert.deepEqual(seenEvents.filter((e) => e === 'acquire').length, 2, 'the fast-path acquire is an event too');
      assert.ok(seenEvents.includes('evict') && seenEvents.includes('destroyError'));
    } finally {
      stop();
    }
  });
});

describe('pools()', () => {
  it('lists open pools and forgets them once closed', async () => {
    const { pool } = setup({ name: 'registry-a' });
    assert.ok(pools().includes(pool as Pool<unknown>));
    await pool.close();
    assert.ok(!pools().includes(pool as Pool<unknown>));
  });
});

describe('inspect()', () => {
  it('reports each resource with its state, lease and socket', async () => {
    const server = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const pool = new Pool<net.Socket>({
      name: 'sockets',
      max: 2,
      leakDetection: 'full',
      factory: {
        create: () => new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect(port, '127.0.0.1', () => { resolve(socket); });
          socket.once('error', reject);
        }),
        destroy: (socket) => { socket.destroy(); },
      },
    });
    try {
      const a = await pool.acquire({ label: 'held' });
      const b = await pool.acquire();
      b.release();
      const seen = pool.inspect();
      assert.equal(seen.name, 'sockets');
      assert.equal(seen.stats.size, 2);
      const used = seen.resources.find((r) => r.state === 'used');
      const idle = seen.resources.find((r) => r.state === 'idle');
      assert.ok(used !== undefined && idle !== undefined);
      assert.equal(used.lease?.label, 'held');
      assert.match(used.lease?.site ?? '', /diagnostics\.test\.[jt]s/);
      assert.equal(used.socket, a.resource, 'a resource that is a socket is its own socket');
      assert.equal(idle.lease, null);
      assert.ok(used.createdAt instanceof Date);
      a.release();
    } finally {
      await pool.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('asks factory.socket for the socket, and survives a hook that throws', async () => {
    const fake = new net.Socket();
    const factory = new TestFactory();
    let throwing = false;
    const pool = new Pool<TestResource>({
      factory: {
        ...factory.basic(),
        socket: () => {
          if (throwing) throw new Error('hook broke');
          return fake;
        },
      },
      clock: new FakeClock(),
    });
    const lease = await pool.acquire();
    assert.equal(pool.inspect().resources[0]?.socket, fake);
    throwing = true;
    assert.equal(pool.inspect().resources[0]?.socket, null);
    lease.release();
    await pool.close();
    fake.destroy();
  });

  it('rejects a factory.socket that is not a function', () => {
    const factory = new TestFactory();
    assert.throws(() => new Pool<TestResource>({ factory: { ...factory.basic(), socket: 42 as never } }), /invalid option "factory\.socket": expected a function or undefined, got number 42/);
  });
});
