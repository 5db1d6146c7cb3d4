import { formatEndpoint, normalizeAddress, TCP_STATES, type ProcessSnapshot, type TcpSocket, type TcpState } from './proc.js';

/** One observation of a process: the kernel's view plus, in-process, Node's active handles by type. */
export interface Sample extends ProcessSnapshot {
  /** `process.getActiveResourcesInfo()` counted by type; null when sampled from outside the process. */
  readonly handles: Readonly<Record<string, number>> | null;
}

/** A socket of the latest sample, with how long the sampler has seen it in its current state. */
export interface SeenSocket {
  readonly socket: TcpSocket;
  /** Who the socket talks to: a remote endpoint (`10.0.0.5:5432`), `inbound :8080`, or `listen 0.0.0.0:8080`. */
  readonly peer: string;
  /** Wall-clock ms when the sampler first saw this socket in this state. */
  readonly firstSeenAt: number;
  /** Latest sample time minus `firstSeenAt`: a lower bound of the time spent in this state. */
  readonly inStateMs: number;
}

/** Sockets of one peer in one state, with their count in every sample of the window (oldest first). */
export interface SocketGroup {
  readonly peer: string;
  readonly state: TcpState;
  readonly count: number;
  readonly trend: readonly number[];
}

/** The count of something in every sample of the window, oldest first, and whether it only went up. */
export interface Series {
  readonly values: readonly number[];
  /** Last minus first. */
  readonly change: number;
  /** Never went down from one sample to the next, and ended higher than it started. */
  readonly rising: boolean;
}

export function series(values: readonly number[]): Series {
  let rising = values.length >= 2;
  for (let i = 1; i < values.length && rising; i++) rising = (values[i] ?? 0) >= (values[i - 1] ?? 0);
  const change = (values.at(-1) ?? 0) - (values[0] ?? 0);
  return { values, change, rising: rising && change > 0 };
}

// Peer names by address and port: one string per peer, not one per socket per sample.
const peerNames = new Map<string, Map<number, string>>();

function remotePeer(address: string, port: number): string {
  let ports = peerNames.get(address);
  if (ports === undefined) {
    if (peerNames.size >= 4096) peerNames.clear();
    ports = new Map();
    peerNames.set(address, ports);
  }
  let name = ports.get(port);
  if (name === undefined) {
    if (ports.size >= 4096) ports.clear();
    name = formatEndpoint({ address: normalizeAddress(address), port });
    ports.set(port, name);
  }
  return name;
}

const inboundNames = new Map<number, string>();

/**
 * The peer a socket is grouped under. Inbound connections each have their own remote port, so they are
 * grouped by the listener they came in on; IPv4-mapped addresses count as IPv4, so a dual-stack client's
 * connections to one server land in one group.
 */
function peerOf(socket: TcpSocket, listening: ReadonlySet<number>): string {
  if (socket.state === 'LISTEN') return `listen ${formatEndpoint(socket.local)}`;
  if (listening.has(socket.local.port)) {
    let name = inboundNames.get(socket.local.port);
    if (name === undefined) {
      name = `inbound :${socket.local.port}`;
      inboundNames.set(socket.local.port, name);
    }
    return name;
  }
  return remotePeer(socket.remote.address, socket.remote.port);
}

const STATE_INDEX = new Map<string, number>(TCP_STATES.map((name, index) => [name, index]));

/** A number, not a string: a sample of 20,000 sockets made 20,000 key strings. */
function stateKey(socket: TcpSocket): number {
  return socket.inode * 16 + (STATE_INDEX.get(socket.state) ?? 0);
}

/**
 * Keeps the last `window` samples of a process and, across all samples it was given, when each socket
 * was first seen in its current state. The kernel does not record when a socket entered a state; the
 * only way to age a CLOSE_WAIT socket from outside is to keep looking at it.
 */
export class Sampler {
  readonly #window: number;
  readonly #samples: Sample[] = [];
  // When each socket of the latest sample (same order) was first seen in its state. An array, not a map
  // kept across samples: the map of the previous sample is built only when a next sample comes, so a
  // one-sample run (the CLI's default for a quick look) builds none.
  #firstSeen: Float64Array = new Float64Array(0);
  // Per sample, computed once: each socket's peer, and the groups of the window.
  readonly #peers = new WeakMap<Sample, string[]>();
  #groups: SocketGroup[] | null = null;

  /** `window`: how many recent samples trends cover. */
  constructor(window: number) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`a sampler's window must be an integer >= 1, got ${String(window)}`);
    this.#window = window;
  }

  /** Samples in the window, oldest first. */
  get samples(): readonly Sample[] {
    return this.#samples;
  }

  get latest(): Sample | undefined {
    return this.#samples.at(-1);
  }

  add(sample: Sample): void {
    const previous = this.#samples.at(-1);
    if (previous !== undefined && sample.takenAt < previous.takenAt) {
      throw new RangeError(`samples must come in time order: got one taken at ${new Date(sample.takenAt).toISOString()} after one taken at ${new Date(previous.takenAt).toISOString()}`);
    }
    if (previous !== undefined && previous.pid !== sample.pid) {
      throw new RangeError(`a sampler follows one process: got a sample of pid ${sample.pid} after samples of pid ${previous.pid}`);
    }
    const firstSeen = new Float64Array(sample.sockets.length).fill(sample.takenAt);
    if (previous !== undefined && previous.sockets.length > 0) {
      const before = new Map<number, number>();
      previous.sockets.forEach((socket, i) => { before.set(stateKey(socket), this.#firstSeen[i] ?? previous.takenAt); });
      sample.sockets.forEach((socket, i) => {
        const at = before.get(stateKey(socket));
        if (at !== undefined) firstSeen[i] = at;
      });
    }
    this.#samples.push(sample);
    if (this.#samples.length > this.#window) this.#samples.shift();
    this.#groups = null;
    this.#firstSeen = firstSeen;
  }

  /** The sockets of the latest sample with their peer and time seen in their state. */
  sockets(): SeenSocket[] {
    const latest = this.latest;
    if (latest === undefined) return [];
    const peers = this.#peersOf(latest);
    return latest.sockets.map((socket, i) => {
      const firstSeenAt = this.#firstSeen[i] ?? latest.takenAt;
      return { socket, peer: peers[i] ?? '', firstSeenAt, inStateMs: latest.takenAt - firstSeenAt };
    });
  }

  #peersOf(sample: Sample): string[] {
    let peers = this.#peers.get(sample);
    if (peers === undefined) {
      const listening = listeningPorts(sample);
      peers = sample.sockets.map((socket) => peerOf(socket, listening));
      this.#peers.set(sample, peers);
    }
    return peers;
  }

  /** Socket counts by peer and state, with their trend over the window; largest groups first. */
  groups(): SocketGroup[] {
    if (this.#groups !== null) return this.#groups;
    // peer -> state -> counts per sample
    const trends = new Map<string, Map<TcpState, number[]>>();
    this.#samples.forEach((sample, index) => {
      const peers = this.#peersOf(sample);
      sample.sockets.forEach((socket, i) => {
        const peer = peers[i] ?? '';
        let states = trends.get(peer);
        if (states === undefined) {
          states = new Map();
          trends.set(peer, states);
        }
        let trend = states.get(socket.state);
        if (trend === undefined) {
          trend = this.#samples.map(() => 0);
          states.set(socket.state, trend);
        }
        trend[index] = (trend[index] ?? 0) + 1;
      });
    });
    const groups: SocketGroup[] = [];
    for (const [peer, states] of trends) for (const [state, trend] of states) groups.push({ peer, state, count: trend.at(-1) ?? 0, trend });
    this.#groups = groups.sort((a, b) => b.count - a.count || a.peer.localeCompare(b.peer) || a.state.localeCompare(b.state));
    return this.#groups;
  }

  /** Connections (every state but LISTEN) per peer over the window. */
  peerSeries(): Map<string, Series> {
    const totals = new Map<string, number[]>();
    for (const group of this.groups()) {
      if (group.state === 'LISTEN') continue;
      const sum = totals.get(group.peer) ?? this.#samples.map(() => 0);
      group.trend.forEach((n, i) => { sum[i] = (sum[i] ?? 0) + n; });
      totals.set(group.peer, sum);
    }
    return new Map([...totals].map(([peer, values]) => [peer, series(values)]));
  }

  threadSeries(): Series {
    return series(this.#samples.map((s) => s.threads));
  }

  fdSeries(): Series {
    return series(this.#samples.map((s) => s.fds.open));
  }

  /** Active handles per type over the window (in-process samples only; a type missing from a sample counts 0). */
  handleSeries(): Map<string, Series> {
    const types = new Set<string>();
    for (const sample of this.#samples) for (const type of Object.keys(sample.handles ?? {})) types.add(type);
    if (this.#samples.some((s) => s.handles === null)) return new Map();
    return new Map([...types].sort().map((type) => [type, series(this.#samples.map((s) => s.handles?.[type] ?? 0))]));
  }
}

function listeningPorts(sample: Sample): Set<number> {
  return new Set(sample.sockets.filter((s) => s.state === 'LISTEN').map((s) => s.local.port));
}
