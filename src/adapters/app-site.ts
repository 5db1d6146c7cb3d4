/** The application's own line in an acquirer's stack: past Lifeguard, node's internals and node_modules (an ORM, a driver). */
import { AsyncLocalStorage } from 'node:async_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The application's line of an acquire made where its frames are gone from the stack (from promise
 * callbacks: knex, see lendToKnex; a call lifeguard/register deferred until its drop-ins loaded). The
 * drop-ins pass it as the lease's label, which their leak reports fall back on.
 */
export const callerSite = new AsyncLocalStorage<string>();

/** First frame of a stack (Lifeguard's frames already removed) outside node_modules and node's internals. */
export function appFrame(stack: string | null): string | null {
  if (stack === null) return null;
  for (const line of stack.split('\n')) {
    const text = line.trim();
    if (!text.startsWith('at ') || /(^|[\s(/\\])node_modules[/\\]/.test(text.slice(3)) || text.includes('node:')) continue;
    const open = text.lastIndexOf('(');
    const location = open >= 0 && text.endsWith(')') ? text.slice(open + 1, -1) : text.slice(3);
    // Frames without a file (`new Promise (<anonymous>)`, `Array.map (<anonymous>)`) name no line.
    if (/:\d+:\d+$/.test(location)) return location;
  }
  return null;
}

// Lifeguard's own frames, built or (with source maps) original, as in src/leak/site.ts.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ownPrefixes = [path.join(packageRoot, 'dist', 'src') + path.sep, path.join(packageRoot, 'src') + path.sep];

/**
 * The caller's stack, captured now and read later: V8 records the frames at capture and formats them only
 * when `.stack` is read, so a site that is never reported (most of them) costs no formatting.
 * The returned function gives the first frame outside Lifeguard, node's internals and node_modules.
 */
export function captureApplicationSite(): () => string | null {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder, captureApplicationSite);
  Error.stackTraceLimit = limit;
  let site: string | null | undefined;
  return () => {
    site ??= siteOf(holder.stack ?? '');
    return site;
  };
}

/** The first frame of the current stack outside Lifeguard, node's internals and node_modules. */
export function applicationSite(): string | null {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder, applicationSite);
  Error.stackTraceLimit = limit;
  return siteOf(holder.stack ?? '');
}

/** The application's line in a stack captured elsewhere (`Error.captureStackTrace`), as {@link applicationSite} gives it. */
export function siteOf(stack: string): string | null {
  const frames = stack.split('\n').filter((line) => !ownPrefixes.some((prefix) => line.includes(prefix))).join('\n');
  let frame = appFrame(frames);
  if (frame?.startsWith('file://') === true) {
    const position = /:\d+:\d+$/.exec(frame)?.[0] ?? '';
    frame = fileURLToPath(frame.slice(0, frame.length - position.length)) + position;
  }
  const cwd = process.cwd() + path.sep;
  return frame !== null && frame.startsWith(cwd) ? frame.slice(cwd.length) : frame;
}
