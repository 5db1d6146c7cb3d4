/** An acquire site: a stack captured cheaply, formatted (Lifeguard's own frames removed) only when read. */
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/**
 * Where a lease was acquired. Capturing is the expensive part (V8 walks the stack); formatting happens
 * only when someone reads `.stack` or `.frame`, which is rare (a leak report, an error message).
 */

// Frames from Lifeguard's own code are noise in a report: a reader wants the first frame that is theirs.
// Both the built files and, with --enable-source-maps, the original sources count as ours.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ownPrefixes = [path.join(packageRoot, 'dist', 'src') + path.sep, path.join(packageRoot, 'src') + path.sep];

function locationOf(line: string): string {
  const text = line.trim().replace(/^at (async )?/, '');
  const open = text.lastIndexOf('(');
  const location = open >= 0 && text.endsWith(')') ? text.slice(open + 1, -1) : text;
  return location.startsWith('file://') ? fileURLToPath(location.replace(/:\d+:\d+$/, '')) + (/:\d+:\d+$/.exec(location)?.[0] ?? '') : location;
}

const IN_NODE_MODULES = /(^|[\s(/\\])node_modules[/\\]/;

function isOwnOrInternal(location: string): boolean {
  return location.startsWith('node:') || ownPrefixes.some((p) => location.startsWith(p));
}

function display(location: string): string {
  const cwd = process.cwd() + path.sep;
  return location.startsWith(cwd) ? location.slice(cwd.length) : location;
}

export class AcquireSite {
  readonly #holder: { readonly stack?: string | undefined };
  #frames: string[] | undefined;

  constructor(holder: { readonly stack?: string | undefined }) {
    this.#holder = holder;
  }

  /** The caller's frames, one per line, Lifeguard's own frames removed. */
  get stack(): string {
    return this.#userFrames().map((f) => `    at ${f}`).join('\n');
  }

  /**
   * The application's line: the first frame outside Lifeguard and outside node_modules (an SDK, an ORM or
   * a client library calls Lifeguard on the application's behalf: the AWS SDK's handler was named for
   * every leaked S3 response), else the first frame outside Lifeguard; relative to the working directory.
   */
  get frame(): string {
    const frames = this.#userFrames();
    return frames.find((f) => !IN_NODE_MODULES.test(f)) ?? frames[0] ?? '(unknown)';
  }

  toString(): string {
    return this.frame;
  }

  #userFrames(): string[] {
    if (this.#frames === undefined) {
      const stack: unknown = this.#holder.stack;
      const lines = (typeof stack === 'string' ? stack : '').split('\n').filter((l) => l.trimStart().startsWith('at '));
      const frames: string[] = [];
      for (const line of lines) {
        const text = line.trim().replace(/^at /, '');
        const location = locationOf(line);
        if (isOwnOrInternal(location)) continue;
        const open = text.lastIndexOf('(');
        frames.push(open >= 0 && text.endsWith(')') ? `${text.slice(0, open).trim()} (${display(location)})` : display(location));
      }
      this.#frames = frames;
    }
    return this.#frames;
  }
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- captureStackTrace takes any function
export function captureSite(callee: Function): AcquireSite {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, callee);
  return new AcquireSite(holder);
}
