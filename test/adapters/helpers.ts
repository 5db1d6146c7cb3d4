import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from '../../src/pool/pool.js';
import type { CreateContext } from '../../src/pool/options.js';
import type { DestroyReason } from '../../src/pool/pool-entry.js';
import { activeResources, grown } from '../support/handles.js';
import { pointsAt } from '../support/site.js';

/** Polls `condition` every 10 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

let seq = 0;
/** A name unique to this process and call: tells this test's server-side connections from everyone else's. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${++seq}`;
}

/**
 * A loopback TCP server that accepts connections and never sends a byte: a database that hangs during the
 * handshake. Counts the connections it has seen close, to prove a timed-out client destroyed its socket.
 */
export class SilentServer {
  readonly #server = net.createServer((socket) => {
    this.accepted++;
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.resume(); // read and drop: a paused socket would never see the client's FIN, nor close
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.closed++;
    });
  });
  readonly #sockets = new Set<net.Socket>();
  accepted = 0;
  closed = 0;

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => { resolve(); }));
  }
}

/** A create context for calling a factory directly; `invalidated` records the reasons reported. */
export function createContext(signal: AbortSignal = new AbortController().signal): CreateContext & { invalidated: unknown[] } {
  const invalidated: unknown[] = [];
  const fail = (): never => assert.fail('the adapters never revoke nor move a resource');
  return { signal, unwanted: new AbortController().signal, invalidate: (reason?: unknown) => { invalidated.push(reason); }, revoke: fail, moved: fail, guard: fail, permanent: (error) => error, invalidated };
}

/** Resolves once every handle started since `before` is gone (sockets close asynchronously); fails otherwise. */
export async function assertNoHandlesLeft(before: Map<string, number>, what: string): Promise<void> {
  try {
    await waitFor(() => Object.keys(grown(before, activeResources())).length === 0, 2000, `${what} to release its handles`);
  } catch {
    assert.deepEqual(grown(before, activeResources()), {}, `${what} left handles behind`);
  }
}

/** Records the pool's `destroy` events. */
export function recordDestroys<T>(pool: Pool<T>): { reason: DestroyReason; cause: unknown; resource: T }[] {
  const events: { reason: DestroyReason; cause: unknown; resource: T }[] = [];
  pool.on('destroy', (e) => { events.push({ reason: e.reason, cause: e.cause, resource: e.resource }); });
  return events;
}

/** Runs `n` tasks with at most `concurrency` at once and returns how many fulfilled and the rejections. */
export async function runAll(n: number, task: (i: number) => Promise<unknown>): Promise<{ ok: number; failed: unknown[] }> {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => task(i)));
  const failed: unknown[] = results.filter((r) => r.status === 'rejected').map((r): unknown => r.reason);
  return { ok: results.length - failed.length, failed };
}

/** Makes a pool, runs `body` with it, closes it whatever happens, and checks it left no handle behind. */
export async function withPool<T>(make: () => Pool<T>, body: (pool: Pool<T>) => Promise<void>): Promise<void> {
  const handles = activeResources();
  const pool = make();
  try {
    await body(pool);
  } finally {
    await pool.close();
  }
  assert.equal(pool.stats().size, 0);
  await assertNoHandlesLeft(handles, `pool "${pool.name}"`);
}

/**
 * After 2 of a pool's 4 connections were killed in use and all 4 leases ended: 4 leases at once are the 2
 * survivors and 2 replacements, then 16 more requests all succeed, and no victim is ever lent again.
 */
export async function assertRecovered<T>(pool: Pool<T>, victims: ReadonlySet<T>, work: (resource: T) => Promise<unknown>): Promise<void> {
  const again = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
  assert.ok(again.every((l) => !victims.has(l.resource)), 'a killed connection was lent again');
  assert.equal(pool.stats().created, 6);
  for (const lease of again) lease.release();
  const { ok, failed } = await runAll(16, () => pool.use(async (resource) => {
    assert.ok(!victims.has(resource), 'a killed connection was lent again');
    await work(resource);
  }));
  assert.deepEqual(failed, []);
  assert.equal(ok, 16);
  const stats = pool.stats();
  assert.equal(stats.destroyed.error, 2);
  assert.equal(stats.createErrors, 0);
  assert.equal(stats.timeouts, 0);
}

/**
 * In a pool of 1: a lease ended with `destroy(err)` loses its connection for good; the next lease gets a
 * fresh one that works, and `inspect()` shows it lent with its socket to `remotePort`.
 */
export async function assertDestroyedLeaseReplaced<T>(pool: Pool<T>, work: (resource: T) => Promise<unknown>, remotePort: number): Promise<void> {
  const first = await pool.acquire();
  const broken = first.resource;
  first.destroy(new Error('the application saw a protocol desync'));
  await pool.use(async (replacement, lease) => {
    assert.notEqual(replacement, broken);
    await work(replacement);
    const [info] = pool.inspect().resources;
    assert.equal(info?.state, 'used');
    assert.equal(info.lease?.id, lease.id);
    assert.equal(info.socket?.remotePort, remotePort);
  });
  assert.equal(pool.stats().destroyed.error, 1);
  assert.equal(pool.stats().created, 2);
}

/**
 * A pool of 4 ready connections, all killed server-side by `killAll()` (which returns their server-side
 * ids): all 4 are evicted without any acquire, each with a `LG_CONNECTION_LOST` cause; then 20 concurrent
 * requests all succeed, none on a killed connection (`serverId` reads a connection's id).
 */
export async function assertIdleKillsEvicted<T, Id>(pool: Pool<T>, killAll: () => Promise<Id[]>, serverId: (resource: T) => Promise<Id>): Promise<void> {
  const destroys = recordDestroys(pool);
  await pool.ready();
  const killed = await killAll();
  assert.equal(killed.length, 4);
  // No acquire: the pool learns it from the connections themselves.
  await waitFor(() => pool.stats().destroyed.error === 4, 5000, 'the 4 killed connections to be evicted');
  assert.equal(destroys.length, 4);
  for (const d of destroys) {
    assert.equal(d.reason, 'error');
    assert.equal((d.cause as { code?: string }).code, 'LG_CONNECTION_LOST');
  }
  const seen = new Set<Id>();
  const { ok, failed } = await runAll(20, () => pool.use(async (resource) => { seen.add(await serverId(resource)); }));
  assert.deepEqual(failed, []);
  assert.equal(ok, 20);
  assert.ok(killed.every((id) => !seen.has(id)), 'a killed connection was lent');
  const stats = pool.stats();
  assert.equal(stats.destroyed.error, 4);
  assert.equal(stats.createErrors, 0);
  assert.equal(stats.timeouts, 0);
}

/** A drop-in pool's leak report, as far as the line check reads it. */
interface DropInLeak {
  readonly kind: string;
  readonly appSite: string | null;
}

/**
 * Holds a connection through an ORM until the pool reports it, then lets go: `hold(gate, mark)` calls
 * `mark(callerLocation(1))` on the same line as the ORM call that keeps a connection until `gate` resolves.
 * The report must name that line (the application's, not a frame of the ORM). Returns the report.
 */
export async function assertLeakNamesLine(pool: { on(event: 'leak', listener: (leak: DropInLeak) => void): unknown }, hold: (gate: Promise<void>, mark: (where: string) => void) => Promise<unknown>): Promise<DropInLeak> {
  let letGo!: () => void;
  const gate = new Promise<void>((resolve) => { letGo = resolve; });
  const leak = new Promise<DropInLeak>((resolve) => { pool.on('leak', resolve); });
  let where = '';
  const running = hold(gate, (at) => { where = at; });
  const report = await leak;
  letGo();
  await running;
  assert.ok(pointsAt(report.appSite, where), `leak site ${String(report.appSite)} should point at ${where}`);
  return report;
}
