#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The `lifeguard` command. Subcommands grow with the toolkit; today: help and version. */
const HELP = `Usage: lifeguard [options]

Leak-proof connection pools for Node.js.

Options:
  -h, --help     show this help
  -v, --version  print the version

Library: import { Pool } from 'lifeguard'  (see README.md and docs/)`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function main(argv: readonly string[]): number {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } }, allowPositionals: true });
  } catch (error) {
    console.error(`lifeguard: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.values.version === true) {
    console.log(version());
    return 0;
  }
  if (parsed.values.help === true || parsed.positionals.length === 0) {
    console.log(HELP);
    return 0;
  }
  console.error(`lifeguard: unknown command "${parsed.positionals[0] ?? ''}"\n\n${HELP}`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
