/** Argument checks shared by the commands, run before node's parseArgs so its messages never reach a user. */

/** A bad command line: the message names the option, what it expects and what it got. */
export class UsageError extends Error {}

/** The longest delay Node's timers take (2^31 - 1 ms, about 24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * parseArgs reads `--pid -5` as an option with no value ("argument is ambiguous") and `--pid` at the end
 * as "argument missing". Here a value option followed by nothing, or by another option, is reported as
 * having no value, and one followed by a negative number is joined to it (`--pid=-5`) so the option's own
 * check rejects the number by name. `valueOptions` maps each option taking a value to what it is for.
 */
export function joinNegativeValues(argv: readonly string[], valueOptions: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = token.startsWith('--') && !token.includes('=') ? token.slice(2) : undefined;
    const what = name === undefined ? undefined : valueOptions[name];
    if (what === undefined) {
      out.push(token);
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && /^-\d/.test(next)) {
      out.push(`${token}=${next}`);
      i++;
    } else if (next === undefined || next.startsWith('-')) {
      throw new UsageError(`option ${token} expects a value (${what}), got ${next === undefined ? 'none' : `none before "${next}"`}`);
    } else out.push(token);
  }
  return out;
}
