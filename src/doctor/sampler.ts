import { formatEndpoint, normalizeAddress, type ProcessSnapshot, type TcpSocket, type TcpState } from './proc.js';

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

/**
 * The peer a socket is grouped under. Inbound connections each have their own remote port, so they are
 * grouped by the listener they came in on; IPv4-mapped addresses count as IPv4, so a dual-stack client's
 * connections to one server land in one group.
 */
function peerOf(socket: TcpSocket, listening: ReadonlySet<number>): string {
  if (socket.state === 'LISTEN') return `listen ${formatEndpoint(socket.local)}`;
  if (listening.has(socket.local.port)) return `inbound :${socket.local.port}`;
  return formatEndpoint({ address: normalizeAddress(socket.remote.address), port: socket.remote.port });
}

function stateKey(socket: TcpSocket): string {
  return `${socket.inode}|${socket.state}`;
}

/**
 * Keeps the last `window` samples of a process and, across all samples it was given, when each socket
 * was first seen in its current state. The kernel does not record when a socket entered a state; the
 * only way to age a CLOSE_WAIT socket from outside is to keep looking at it.
 */
export class Sampler {
  readonly #window: number;
  readonly #samples: Sample[] = [];
  // inode|state -> first time seen so; pruned to the sockets of the latest sample.
  #firstSeen = new Map<string, number>();

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
    this.#samples.push(sample);
    if (this.#samples.length > this.#window) this.#samples.shift();
    const seen = new Map<string, number>();
    for (const socket of sample.sockets) {
      const key = stateKey(socket);
      seen.set(key, this.#firstSeen.get(key) ?? sample.takenAt);
    }
    this.#firstSeen = seen;
  }

  /** The sockets of the latest sample with their peer and time seen in their state. */
  sockets(): SeenSocket[] {
    const latest = this.latest;
    if (latest === undefined) return [];
    const listening = listeningPorts(latest);
    return latest.sockets.map((socket) => {
      const firstSeenAt = this.#firstSeen.get(stateKey(socket)) ?? latest.takenAt;
      return { socket, peer: peerOf(socket, listening), firstSeenAt, inStateMs: latest.takenAt - firstSeenAt };
    });
  }

  /** Socket counts by peer and state, with their trend over the window; largest groups first. */
  groups(): SocketGroup[] {
    const trends = new Map<string, { peer: string; state: TcpState; trend: number[] }>();
    this.#samples.forEach((sample, index) => {
      const listening = listeningPorts(sample);
      for (const socket of sample.sockets) {
        const peer = peerOf(socket, listening);
        const key = `${peer}|${socket.state}`;
        let group = trends.get(key);
        if (group === undefined) {
          group = { peer, state: socket.state, trend: this.#samples.map(() => 0) };
          trends.set(key, group);
        }
        group.trend[index] = (group.trend[index] ?? 0) + 1;
      }
    });
    return [...trends.values()]
      .map((g) => ({ peer: g.peer, state: g.state, count: g.trend.at(-1) ?? 0, trend: g.trend }))
      .sort((a, b) => b.count - a.count || a.peer.localeCompare(b.peer) || a.state.localeCompare(b.state));
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
