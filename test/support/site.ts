/** `file:line` of the caller of the function that calls this. */
export function callerLocation(depth = 2): string {
  const line = new Error().stack?.split('\n')[depth + 1] ?? '';
  const match = /([^/\s(]+\.(?:ts|js)):(\d+):\d+/.exec(line);
  return match === null ? '?' : `${match[1] ?? ''}:${match[2] ?? ''}`;
}

/**
 * True when `frame` (as reported by Lifeguard) points at `location` (`file:line`) or the line after it:
 * tests mark a site with a call on the same source line as the acquire, which the compiled JavaScript
 * puts on the next line unless source maps are enabled.
 */
export function pointsAt(frame: string | null | undefined, location: string): boolean {
  if (frame === null || frame === undefined) return false;
  const [file, lineText] = location.split(':');
  const match = new RegExp(`${(file ?? '').replace(/[.]/g, '\\.')}:(\\d+):\\d+`).exec(frame);
  if (match === null) return false;
  const delta = Number(match[1]) - Number(lineText);
  return delta === 0 || delta === 1;
}
