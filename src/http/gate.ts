import { HttpClosedError } from './errors.js';

/** A pooled connection as the gate sees it: where it goes, whether it is idle, and how to evict it. */
export interface GatedConnection {
  readonly origin: string;
  /** True while no request uses it. */
  readonly idle: boolean;
  /** Monotonic time it became idle. */
  readonly idleSince: number;
  /** True once evicted (its slot is on its way back). */
  readonly evicted: boolean;
  /** True while it moves to the pool of the waiter it was handed to (see {@link ConnectionGate.handOver}): not evictable then. */
  readonly moving?: boolean;
  /** Evicts it (idle: at once; busy: when its request ends). Frees its slot through {@link ConnectionGate.release}. */
  evict(reason: Error): void;
}

export interface GateSnapshot {
  readonly total: number;
  readonly perOrigin: Readonly<Record<string, number>>;
  readonly waiting: readonly string[];
  readonly idle: number;
  readonly busy: number;
  readonly evicting: number;
  readonly children: readonly GateSnapshot[];
}

/** Idle closes remembered per origin. */
const IDLE_SAMPLES = 8;

/**
 * Takes an open connection instead of a new slot (see {@link ConnectionGate.handOver}): null to refuse it;
 * else it made the connection its pool's (and rebound it to its gate) and returns what the gate calls once
 * the slot has moved. `parked`: the connection sits idle in its pool, which that call makes drop it;
 * otherwise its request just ended and the caller drops it from its pool.
 */
export type Adopter = (connection: GatedConnection, parked: boolean) => (() => void) | null;

interface Waiter {
  readonly origin: string;
  /** Set when the slot may come with an open connection of another gate (see {@link ConnectionGate.handOver}). */
  readonly adopt: Adopter | undefined;
  /** When the request this slot is for arrived: waiters anywhere in the tree are served in this order. */
  readonly arrivedAt: number;
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Connection slots per origin and in total, shared by every pool of a dispatcher, its agents and its scopes
 * (incident 1: a cap per host and in total; incident 2: never more connections than the remote allows).
 * A pool must hold a slot for each connection it opens, from before the connect until the socket is
 * destroyed. Gates nest: a scope's gate has its parent's as `parent`, and a slot is granted only when every
 * gate up to the root has room, so scopes can never exceed the caps of the dispatcher they came from.
 *
 * Waiters are served first-in first-out per origin; a waiter blocked by the cap of another origin's idle
 * connections gets one of them evicted (an idle connection is worth less than a request waiting).
 */
export class ConnectionGate {
  readonly perOrigin: number;
  readonly maxTotal: number;
  readonly #parent: ConnectionGate | null;
  readonly #root: ConnectionGate;
  /** This gate and its ancestors, up to the root. */
  readonly #line: readonly ConnectionGate[];
  readonly #children = new Set<ConnectionGate>();
  readonly #counts = new Map<string, number>();
  readonly #waiters: Waiter[] = [];
  /** Connections opened through this gate (not its children's). */
  readonly #connections = new Set<GatedConnection>();
  #total = 0;
  /** Root only: waiters anywhere in the tree, and the connections evicted on their behalf whose slots are not back yet. */
  #waitingInTree = 0;
  readonly #evicting = new Set<GatedConnection>();
  #closed: Error | null = null;
  /** Root only: numbers waiters, to keep arrival order among equal times. */
  #seq = 0;
  /** Root only: every gate of the tree, parents before children; null when a gate joined or left since. */
  #treeCache: ConnectionGate[] | null = null;

  constructor(perOrigin: number, maxTotal: number, parent: ConnectionGate | null = null) {
    this.perOrigin = perOrigin;
    this.maxTotal = maxTotal;
    this.#parent = parent;
    this.#root = parent === null ? this : parent.#root;
    this.#line = parent === null ? [this] : [this, ...parent.#line];
    if (parent !== null) {
      parent.#children.add(this);
      this.#root.#treeCache = null;
    }
  }

  /** Connections holding a slot of this gate (its children's included). */
  get total(): number {
    return this.#total;
  }

  /**
   * Root only: the idle times at which each origin's server was seen closing idle connections (FIN on an
   * idle socket), the last {@link IDLE_SAMPLES} per origin. Servers that announce no `Keep-Alive:
   * timeout=` still close idle connections at some time; reusing one just then races that close.
   */
  readonly #idleCloses = new Map<string, number[]>();

  /** A FIN arrived on a connection to `origin` idle for `idleMs`: the server's idle timeout is at most about that. */
  learnIdleClose(origin: string, idleMs: number): void {
    const root = this.#root;
    let seen = root.#idleCloses.get(origin);
    if (seen === undefined) {
      // Bounded: a process that talks to many hosts keeps at most this many.
      if (root.#idleCloses.size >= 1024) root.#idleCloses.clear();
      seen = [];
      root.#idleCloses.set(origin, seen);
    }
    seen.push(idleMs);
    if (seen.length > IDLE_SAMPLES) seen.shift();
  }

  /**
   * How long a connection to `origin` may sit idle and still be reused: the shortest idle close seen
   * lately minus a margin (`marginMs`, at most a quarter of it), or Infinity when none was seen. The
   * shortest, because an early close (a restart) only costs reuse, while a late estimate costs requests.
   */
  idleLimit(origin: string, marginMs: number): number {
    const seen = this.#root.#idleCloses.get(origin);
    if (seen === undefined) return Infinity;
    const shortest = Math.min(...seen);
    return shortest - Math.min(marginMs, shortest / 4);
  }

  /** True while a request waits for a slot at any gate of this tree. */
  get waitingAnywhere(): boolean {
    return this.#root.#waitingInTree > 0;
  }

  /** Requests for a slot waiting at this gate. */
  get waiting(): number {
    return this.#waiters.length;
  }

  count(origin: string): number {
    return this.#counts.get(origin) ?? 0;
  }

  /**
   * Resolves once a slot for `origin` is taken (call {@link release} when its connection is gone).
   * `arrivedAt` is when the request that needs it arrived: slots are granted in that order across every
   * gate of the tree, so that no scope or origin is served ahead of requests that came before. With
   * `adopt`, the slot may instead come with an open connection another gate hands over ({@link handOver}):
   * `adopt` has taken it by the time the promise resolves.
   */
  acquire(origin: string, signal?: AbortSignal, arrivedAt = -Infinity, adopt?: Adopter): Promise<void> {
    if (this.#closed !== null) return Promise.reject(this.#closed);
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    if (this.#root.#waitingInTree === 0 && this.#canTake(origin)) {
      this.#take(origin);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { origin, adopt, arrivedAt, seq: this.#root.#seq++, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          if (this.#remove(waiter)) reject(signal.reason as Error);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      this.#root.#waitingInTree++;
      this.#root.#rebalance();
    });
  }

  /** Frees the slot of a connection to `origin` (its socket is closed); `connection` when it was tracked. */
  release(origin: string, connection?: GatedConnection): void {
    for (const gate of this.#line) {
      gate.#total--;
      const n = (gate.#counts.get(origin) ?? 1) - 1;
      if (n === 0) gate.#counts.delete(origin);
      else gate.#counts.set(origin, n);
    }
    if (connection !== undefined) this.#root.#evicting.delete(connection);
    this.#root.#pumpTree();
  }

  /** For diagnostics: this gate's counts, waiters and connections, and its children's. */
  snapshot(): GateSnapshot {
    return {
      total: this.#total,
      perOrigin: Object.fromEntries(this.#counts),
      waiting: this.#waiters.map((w) => w.origin),
      idle: [...this.#connections].filter((c) => c.idle).length,
      busy: [...this.#connections].filter((c) => !c.idle).length,
      evicting: this.#root.#evicting.size,
      children: [...this.#children].map((c) => c.snapshot()),
    };
  }

  track(connection: GatedConnection): void {
    this.#connections.add(connection);
  }

  untrack(connection: GatedConnection): void {
    this.#connections.delete(connection);
  }

  /** A connection became idle: if a request anywhere in the tree waits for a slot, it may need this one. */
  notifyIdle(): void {
    if (this.#root.#waitingInTree > 0) this.#root.#rebalance();
  }

  /** Rejects every waiter and detaches from the parent. Slots still held are released as their connections go. */
  close(error: Error = new HttpClosedError('connection gate closed')): void {
    if (this.#closed !== null) return;
    this.#closed = error;
    for (const waiter of this.#waiters.splice(0)) {
      this.#unlisten(waiter);
      this.#root.#waitingInTree--;
      waiter.reject(error);
    }
    if (this.#total === 0) this.#detach();
  }

  #detach(): void {
    if (this.#parent !== null && this.#parent.#children.delete(this)) this.#root.#treeCache = null;
  }

  #canTake(origin: string): boolean {
    for (const gate of this.#line) {
      if (gate.#total >= gate.maxTotal || (gate.#counts.get(origin) ?? 0) >= gate.perOrigin) return false;
    }
    return true;
  }

  #take(origin: string): void {
    for (const gate of this.#line) {
      gate.#total++;
      gate.#counts.set(origin, (gate.#counts.get(origin) ?? 0) + 1);
    }
  }

  #remove(waiter: Waiter): boolean {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return false;
    this.#waiters.splice(index, 1);
    this.#unlisten(waiter);
    this.#root.#waitingInTree--;
    return true;
  }

  #unlisten(waiter: Waiter): void {
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }

  /** Grants every waiter that fits, in order, skipping (not blocking on) origins that are full. */
  #pump(): void {
    for (let i = 0; i < this.#waiters.length;) {
      const waiter = this.#waiters[i] as Waiter;
      if (!this.#canTake(waiter.origin)) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      this.#unlisten(waiter);
      this.#root.#waitingInTree--;
      this.#take(waiter.origin);
      waiter.resolve();
    }
    if (this.#closed !== null && this.#total === 0) this.#detach();
  }

  /** Root only: grants the waiters of every gate of the tree that fit, in arrival order (skipping, not blocking on, those that do not fit). */
  #pumpTree(): void {
    if (this.#waitingInTree === 0) {
      for (const gate of this.#tree()) gate.#pump();
      return;
    }
    // The whole tree at its total cap (the usual state under load): no waiter can take a slot, and sorting
    // them all on every wait and release is wasted.
    if (this.#total < this.maxTotal) this.#grantInOrder();
    for (const gate of this.#tree()) if (gate.#closed !== null && gate.#total === 0) gate.#detach();
  }

  #grantInOrder(): void {
    const all: [ConnectionGate, Waiter][] = [];
    for (const gate of this.#tree()) for (const waiter of gate.#waiters) all.push([gate, waiter]);
    all.sort((a, b) => a[1].arrivedAt - b[1].arrivedAt || a[1].seq - b[1].seq);
    for (const [gate, waiter] of all) {
      if (!gate.#canTake(waiter.origin)) continue;
      gate.#remove(waiter);
      gate.#take(waiter.origin);
      waiter.resolve();
    }
  }

  /**
   * True when a request that arrived before `before` waits at another gate of the tree, or for another
   * origin, and would get a slot if a connection to `origin` of this gate closed. A connection whose
   * request ends then closes instead of going to the next request of its own pool: a pool that keeps
   * handing its connections to its own queue would otherwise starve every other scope and origin
   * behind a shared total cap.
   */
  olderWaiterElsewhere(origin: string, before: number): boolean {
    return this.#oldestFreedBy(origin, before) !== null;
  }

  /**
   * The request on `connection` (one of this gate's) ended and it is fit for another. When the oldest
   * request waiting elsewhere in the tree that its slot would let in (see {@link olderWaiterElsewhere})
   * arrived before `before` and is for the same origin, and that waiter's pool adopts open connections,
   * the slot moves to the waiter's gate with the connection itself: no close and no new connect for a
   * slot that changes scope (a connect per request across 50 scopes made fairness cost 16 times the wait
   * of one shared pool). True when handed over: the caller's pool must then drop the connection without
   * closing it. False when no such waiter (or it refused): the caller keeps or closes it as before.
   */
  handOver(connection: GatedConnection, before: number): boolean {
    if (this.#root.#waitingInTree === 0) return false;
    const origin = connection.origin;
    const found = this.#oldestFreedBy(origin, before);
    if (found === null) return false;
    const [gate, waiter] = found;
    if (waiter.origin !== origin || waiter.adopt === undefined || !this.#connections.has(connection)) return false;
    const done = waiter.adopt(connection, false);
    if (done === null) return false;
    this.#move(connection, gate, waiter);
    done();
    return true;
  }

  /** `waiter` of `gate` adopted `connection` of this gate: its slot moves from this gate's line of ancestors to the waiter's (shared ancestors end unchanged). */
  #move(connection: GatedConnection, gate: ConnectionGate, waiter: Waiter): void {
    const origin = connection.origin;
    for (const g of this.#line) {
      g.#total--;
      const n = (g.#counts.get(origin) ?? 1) - 1;
      if (n === 0) g.#counts.delete(origin);
      else g.#counts.set(origin, n);
    }
    this.#connections.delete(connection);
    gate.#connections.add(connection);
    gate.#remove(waiter);
    gate.#take(origin);
    waiter.resolve();
    if (this.#closed !== null && this.#total === 0) this.#detach();
  }

  /**
   * The oldest request (arrival order) waiting at another gate of the tree, or for another origin, that
   * arrived before `before` and would get a slot if a connection to `origin` of this gate closed.
   */
  #oldestFreedBy(origin: string, before: number): [ConnectionGate, Waiter] | null {
    const root = this.#root;
    if (root.#waitingInTree === 0) return null;
    let best: [ConnectionGate, Waiter] | null = null;
    for (const gate of root.#tree()) {
      for (const waiter of gate.#waiters) {
        if (waiter.arrivedAt >= before || (gate === this && waiter.origin === origin)) continue;
        if (best !== null && (waiter.arrivedAt > best[1].arrivedAt || (waiter.arrivedAt === best[1].arrivedAt && waiter.seq > best[1].seq))) continue;
        if (gate.#fitsFreed(waiter, this, origin)) best = [gate, waiter];
      }
    }
    return best;
  }

  /** True when `waiter` of this gate would get a slot if a connection to `origin` of gate `at` closed. */
  #fitsFreed(waiter: Waiter, at: ConnectionGate, origin: string): boolean {
    for (const g of this.#line) {
      const freed = at.#under(g) ? 1 : 0;
      const freedHere = freed === 1 && waiter.origin === origin ? 1 : 0;
      if (g.#total - freed >= g.maxTotal || (g.#counts.get(waiter.origin) ?? 0) - freedHere >= g.perOrigin) return false;
    }
    return true;
  }

  /** Root only: evicts idle connections that stand in the way of waiters, one per waiter at most. */
  #rebalance(): void {
    this.#pumpTree();
    let budget = this.#waitingInTree - this.#evicting.size;
    if (budget <= 0) return;
    // The idle connections, gathered once: under load there are none, and this runs on every wait for
    // a slot (a search of the whole tree's connections per waiter was most of a scoped request's cost).
    const gates = this.#tree();
    const idle: [ConnectionGate, GatedConnection][] = [];
    for (const gate of gates) for (const c of gate.#connections) if (c.idle && !c.evicted && c.moving !== true) idle.push([gate, c]);
    if (idle.length === 0) return;
    // First, waiters that can take an idle connection of another gate as it is (same origin): it moves
    // with its slot, oldest waiter first, instead of being closed for a new connect.
    const adopting: [ConnectionGate, Waiter][] = [];
    for (const gate of gates) for (const waiter of gate.#waiters) if (waiter.adopt !== undefined) adopting.push([gate, waiter]);
    adopting.sort((a, b) => a[1].arrivedAt - b[1].arrivedAt || a[1].seq - b[1].seq);
    for (const [gate, waiter] of adopting) {
      if (budget <= 0) return;
      if (gate.#adoptIdle(waiter, idle)) budget--;
    }
    for (const gate of gates) {
      for (const waiter of gate.#waiters) {
        if (budget <= 0) return;
        const victim = gate.#victimFor(waiter.origin, idle);
        if (victim === null) continue;
        this.#evicting.add(victim);
        budget--;
        victim.evict(new Error(`evicted while idle: a request to ${waiter.origin} was waiting for a connection slot`));
      }
    }
  }

  /**
   * Hands `waiter` (of this gate) the longest-idle connection of `idle` to its origin, at another gate,
   * whose slot would let it in, if its adopter takes it (a connection sitting idle in its pool). True
   * when handed over.
   */
  #adoptIdle(waiter: Waiter, idle: readonly [ConnectionGate, GatedConnection][]): boolean {
    const adopt = waiter.adopt;
    // Served meanwhile (a handover's pool drop may have moved things along): nothing to hand it.
    if (adopt === undefined || !this.#waiters.includes(waiter)) return false;
    for (;;) {
      let best: [ConnectionGate, GatedConnection] | null = null;
      for (const pair of idle) {
        const [at, c] = pair;
        if (at === this || c.origin !== waiter.origin || !c.idle || c.evicted || !at.#connections.has(c)) continue;
        if (best !== null && c.idleSince >= best[1].idleSince) continue;
        if (this.#fitsFreed(waiter, at, c.origin)) best = pair;
      }
      if (best === null) return false;
      const [at, c] = best;
      const done = adopt(c, true);
      if (done !== null) {
        at.#move(c, this, waiter);
        done();
        return true;
      }
      // Refused (not parked in its pool, past its life, other Client options): try the next one.
      idle = idle.filter((pair) => pair !== best);
    }
  }

  /** The longest-idle connection of `idle` whose eviction would unblock a waiter for `origin` at this gate. */
  #victimFor(origin: string, idle: readonly [ConnectionGate, GatedConnection][]): GatedConnection | null {
    for (const gate of this.#line) {
      const totalFull = gate.#total >= gate.maxTotal;
      const originFull = (gate.#counts.get(origin) ?? 0) >= gate.perOrigin;
      if (!totalFull && !originFull) continue;
      let best: GatedConnection | null = null;
      for (const [at, c] of idle) {
        if (!c.idle || c.evicted || c.moving === true || (originFull && c.origin !== origin) || !at.#under(gate) || !at.#connections.has(c)) continue;
        if (best === null || c.idleSince < best.idleSince) best = c;
      }
      return best;
    }
    return null;
  }

  /** True when this gate is `ancestor` or one of its descendants. */
  #under(ancestor: ConnectionGate): boolean {
    return this.#line.includes(ancestor);
  }

  /** Root only: every gate of the tree (cached until a gate joins or leaves). */
  #tree(): ConnectionGate[] {
    if (this.#treeCache !== null) return this.#treeCache;
    const gates: ConnectionGate[] = [];
    const collect = (gate: ConnectionGate): void => {
      gates.push(gate);
      for (const child of gate.#children) collect(child);
    };
    collect(this);
    this.#treeCache = gates;
    return gates;
  }
}
