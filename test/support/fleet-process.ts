/**
 * The fleet tests' worker processes (test/budget/fleet.test.ts, test/http/budget-fleet.test.ts): forked
 * with their config as argv[2], reporting progress over IPC (`{ type: 'progress' | 'done', ... }`),
 * stopped with the message `'stop'`, and SIGKILLed by {@link killWorkers} after each test.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** A forked worker: its latest progress report, and its final one once it has exited. */
export interface FleetWorker<P> {
  readonly child: ChildProcess;
  /** Latest progress report. */
  progress: P;
  /** Resolves with the final report, or null if the process died without one. */
  readonly done: Promise<(P & { leftover: string[] }) | null>;
  exited: boolean;
}

const children = new Set<ChildProcess>();

/** Forks `script` with `config` (JSON) as its argument; `initial` is its progress until it first reports. */
export function forkWorker<P>(script: string, config: unknown, initial: P, execArgv: readonly string[] = []): FleetWorker<P> {
  const child = fork(script, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...execArgv] });
  children.add(child);
  let final: (P & { leftover: string[] }) | null = null;
  const worker: FleetWorker<P> = {
    child,
    progress: initial,
    exited: false,
    done: new Promise((resolve) => {
      child.once('exit', () => {
        worker.exited = true;
        children.delete(child);
        resolve(final);
      });
    }),
  };
  child.on('message', (message: P & { type: string; leftover?: string[] }) => {
    worker.progress = message;
    if (message.type === 'done') final = message as P & { leftover: string[] };
  });
  return worker;
}

/** SIGKILLs every worker still running (for afterEach: a failed test leaves none behind). */
export function killWorkers(): void {
  for (const child of children) child.kill('SIGKILL');
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `cond` holds, checking every 25 ms; fails after `timeoutMs` with `what`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(25);
  }
}
