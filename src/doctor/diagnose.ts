import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionError } from '../pool/errors.js';
import { describe, numberOption, rejectUnknownKeys } from '../pool/options.js';
import type { Pool } from '../pool/pool.js';
import { pools as openPools } from '../pool/registry.js';
import { resolveThresholds, type DoctorThresholds, type ResolvedThresholds } from './findings.js';
import { collectOwners } from './join.js';
import { checkFdReader } from './links.js';
import { snapshotProcess, type FdReader, type SocketReadOptions, type SocketSource } from './proc.js';
import { buildReport, type DiagnosisReport } from './report.js';
import { Sampler, type Sample } from './sampler.js';
import { ALL_TIMERS, countTimers, liveTimers } from './timers.js';

/** Options of {@link diagnose} and {@link watch}. */
export interface DiagnoseOptions {
  /** Process to examine (its sockets, descriptors and threads). @default process.pid */
  readonly pid?: number;
  /** Samples to take; CLOSE_WAIT ages and trends need at least 2. In {@link watch}, how many recent samples trends cover. @default 3 */
  readonly samples?: number;
  /** Time between samples. @default 1000 */
  readonly intervalMs?: number;
  /** When findings are raised and how severe they are. @default see {@link DoctorThresholds} */
  readonly thresholds?: DoctorThresholds;
  /** Stops sampling: `diagnose()` rejects with the signal's reason, `watch()` ends. */
  readonly signal?: AbortSignal;
  /** Where procfs is mounted (to read a saved copy). @default '/proc' */
  readonly procRoot?: string;
  /**
   * Where the sockets are read from: `'procfs'` (the /proc tables), `'ss'` (netlink, by running `ss -tanHe`
   * beside the descriptor reads), or `'auto'` (ss when found and the process shares this network namespace).
   * @default 'procfs'
   */
  readonly source?: SocketSource;
  /**
   * Who reads where the descriptors point, with the /proc tables: `'inline'` (this thread) or `'readlink'`
   * (coreutils' `readlink` in a child process on another core, this thread when it cannot be used).
   * @default 'inline' (the CLI: `'readlink'`)
   */
  readonly fdReader?: FdReader;
}

/** Options of {@link diagnoseSelf}: those of {@link diagnose} but `pid`, plus which pools to join. */
export interface DiagnoseSelfOptions extends Omit<DiagnoseOptions, 'pid'> {
  /** Pools whose resources and leases are matched to the sockets. @default every open pool of the process (`pools()`) */
  readonly pools?: readonly Pool<unknown>[];
}

/** Options of {@link Doctor} and {@link watch}: `self: true` for an in-process view (then no `pid`). */
export type DoctorOptions = (DiagnoseOptions & { readonly self?: false }) | (DiagnoseSelfOptions & { readonly self: true });

interface Resolved {
  readonly pid: number;
  readonly samples: number;
  readonly intervalMs: number;
  readonly thresholds: ResolvedThresholds;
  readonly signal: AbortSignal | undefined;
  readonly proc: SocketReadOptions;
  /** null: out of process. */
  readonly pools: (() => readonly Pool<unknown>[]) | null;
}

const KEYS = new Set(['pid', 'samples', 'intervalMs', 'thresholds', 'signal', 'procRoot', 'source', 'fdReader']);
const SELF_KEYS = new Set(['samples', 'intervalMs', 'thresholds', 'signal', 'procRoot', 'source', 'fdReader', 'pools']);

function resolveOptions(options: DiagnoseOptions | DiagnoseSelfOptions | undefined, self: boolean): Resolved {
  const given = options ?? {};
  if (typeof given !== 'object' || (given as unknown) === null) {
    throw new InvalidOptionError('options', `invalid option "options": expected an object, got ${describe(given)}`);
  }
  rejectUnknownKeys(given, self ? SELF_KEYS : KEYS, self ? 'diagnoseSelf()' : 'diagnose()');
  const source = given as Record<string, unknown>;
  const pid = self ? process.pid : numberOption(source, 'pid', process.pid, { integer: true, min: 1 });
  const signal = source['signal'];
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidOptionError('signal', `invalid option "signal": expected an AbortSignal, got ${describe(signal)}`);
  }
  const procRoot = source['procRoot'];
  if (procRoot !== undefined && (typeof procRoot !== 'string' || procRoot.length === 0)) {
    throw new InvalidOptionError('procRoot', `invalid option "procRoot": expected a non-empty path, got ${describe(procRoot)}`);
  }
  const from = source['source'];
  if (from !== undefined && from !== 'auto' && from !== 'procfs' && from !== 'ss') {
    throw new InvalidOptionError('source', `invalid option "source": expected "auto", "procfs" or "ss", got ${describe(from)}`);
  }
  if (from === 'ss' && procRoot !== undefined && procRoot !== '/proc') {
    throw new InvalidOptionError('source', `invalid option "source": "ss" reads the live kernel, not a copy under procRoot ${JSON.stringify(procRoot)}`);
  }
  const fdReader = source['fdReader'];
  checkFdReader(fdReader);
  const chosen = source['pools'];
  if (chosen !== undefined && (!Array.isArray(chosen) || !chosen.every((p: unknown) => typeof p === 'object' && p !== null && typeof (p as { inspect?: unknown }).inspect === 'function'))) {
    throw new InvalidOptionError('pools', `invalid option "pools": expected an array of Lifeguard pools, got ${describe(chosen)}`);
  }
  return {
    pid,
    samples: numberOption(source, 'samples', 3, { integer: true, min: 1 }),
    intervalMs: timerOption(source),
    thresholds: resolveThresholds(source['thresholds'] as DoctorThresholds | undefined),
    signal,
    proc: { ...(procRoot === undefined ? {} : { procRoot }), ...(from === undefined ? {} : { source: from }), ...(fdReader === undefined ? {} : { fdReader }) },
    pools: !self ? null : chosen === undefined ? openPools : () => chosen as readonly Pool<unknown>[],
  };
}

const MAX_TIMER_MS = 2 ** 31 - 1;

// Node turns a longer delay into 1 ms (with a TimeoutOverflowWarning): a sampler that meant "rarely" would sample constantly.
function timerOption(source: Record<string, unknown>): number {
  const value = numberOption(source, 'intervalMs', 1000);
  if (value > MAX_TIMER_MS) {
    throw new InvalidOptionError('intervalMs', `invalid option "intervalMs": expected a number from 0 to ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node can set), got ${describe(value)}`);
  }
  return value;
}

// timers/promises rejects an aborted sleep with a generic AbortError; callers expect the signal's own reason.
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (error) {
    if (signal?.aborted === true) throw signal.reason;
    throw error;
  }
}

function countHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  const timers = liveTimers();
  if (timers !== null) counts[ALL_TIMERS] = timers;
  return counts;
}

/**
 * Samples one process and reports on it. `diagnose()`, `diagnoseSelf()` and `watch()` are built on it;
 * use it directly to sample on your own schedule (an alerting loop): call `sample()` now and then and
 * read `report()`. Holds no timer or handle of its own.
 */
export class Doctor {
  readonly #o: Resolved;
  readonly #sampler: Sampler;
  // In-process: stops counting timers (see timers.ts); null when not counting.
  #stopCounting: (() => void) | null = null;

  /** `self: true` joins sockets to this process's pools and counts its handles (`pid` is then this process). */
  constructor(options?: DoctorOptions) {
    const { self = false, ...rest } = options ?? {};
    this.#o = resolveOptions(rest, self);
    this.#sampler = new Sampler(this.#o.samples);
  }

  get pid(): number {
    return this.#o.pid;
  }

  /** Reads the kernel's tables (and, in-process, the handles) once and adds the result to the window. */
  async sample(): Promise<Sample> {
    // In-process, timers are counted from the first sample on (unref'd ones included), until close().
    if (this.#o.pools !== null && this.#stopCounting === null) this.#stopCounting = countTimers();
    const snapshot = await snapshotProcess(this.#o.pid, this.#o.proc);
    const sample: Sample = { ...snapshot, handles: this.#o.pools === null ? null : countHandles() };
    this.#sampler.add(sample);
    return sample;
  }

  /**
   * Stops what an in-process Doctor started on its first sample: the count of timers (an async hook, which
   * costs every promise a little). `diagnoseSelf()` and `watch()` call it when they end. Idempotent.
   */
  close(): void {
    this.#stopCounting?.();
    this.#stopCounting = null;
  }

  /** The report on the samples so far (in-process: joined to the pools as they are now). */
  report(): DiagnosisReport {
    return buildReport(this.#sampler, this.#o.thresholds, this.#o.pools === null ? null : collectOwners(this.#o.pools()));
  }

  /** Takes `samples` samples `intervalMs` apart (rejecting with the signal's reason if it aborts) and reports. */
  async run(): Promise<DiagnosisReport> {
    const { samples, intervalMs, signal } = this.#o;
    signal?.throwIfAborted();
    try {
      for (let i = 0; i < samples; i++) {
        if (i > 0) await pause(intervalMs, signal);
        await this.sample();
        signal?.throwIfAborted();
      }
      return this.report();
    } finally {
      this.close();
    }
  }

  /** Samples every `intervalMs`, yielding a report after each sample (the first at once), until the signal aborts. */
  async *watch(): AsyncGenerator<DiagnosisReport, void, undefined> {
    const { intervalMs, signal } = this.#o;
    // A function, not `signal.aborted` inline: the type checker assumes a property read before an await is still false after it.
    const stopped = (): boolean => signal?.aborted === true;
    try {
      while (!stopped()) {
        await this.sample();
        if (stopped()) return;
        yield this.report();
        try {
          await pause(intervalMs, signal);
        } catch (error) {
          if (stopped()) return;
          throw error;
        }
      }
    } finally {
      this.close();
    }
  }
}

/**
 * Examines a process from the outside: its TCP sockets by state and peer, how long CLOSE_WAIT sockets
 * stay, trends across `samples` samples `intervalMs` apart, descriptors against the limit, threads.
 * Linux only: rejects with `LG_DOCTOR_UNSUPPORTED` elsewhere.
 */
export function diagnose(options?: DiagnoseOptions): Promise<DiagnosisReport> {
  return new Doctor(options).run();
}

/**
 * Examines this process from the inside: everything {@link diagnose} does, plus active handles by type
 * and the join no outside tool can make: each socket matched to the pool resource and lease that own it
 * ("held by pool db, lease #3 acquired at src/app.ts:42:7, 95 s ago"), and leases held too long.
 */
export function diagnoseSelf(options?: DiagnoseSelfOptions): Promise<DiagnosisReport> {
  return new Doctor({ ...options, self: true }).run();
}

/**
 * Samples a process every `intervalMs` and yields a report after each sample (the first at once), with
 * trends over the last `samples` samples, until `signal` aborts; then it returns without error.
 * `self: true` watches this process from the inside, as {@link diagnoseSelf} does.
 */
export function watch(options?: DoctorOptions): AsyncGenerator<DiagnosisReport, void, undefined> {
  return new Doctor(options).watch();
}
