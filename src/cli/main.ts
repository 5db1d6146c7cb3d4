#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The `lifeguard` command: help, version, and subcommands (`doctor`). */
const HELP = `Usage: lifeguard <command> [options]
       lifeguard doctor --pid <pid> [--json] [--watch [--interval-ms <ms>]] [--samples <n>] [--fail-on <severity>]
       lifeguard doctor --pid <pid> --serve <host:port>    (Prometheus sidecar)
       lifeguard doctor --all [--top <n>] [--json]         (every process of the host, worst first)
       lifeguard dashboard --pid <pid> [--port <port>] [--host <address>] [--interval-ms <ms>]

Leak-proof connection pools for Node.js.

Commands:
  doctor         examine a process's TCP sockets, descriptors and threads (Linux); "lifeguard doctor --help"
  dashboard      a live web page of a process's sockets, descriptors, threads and alerts; "lifeguard dashboard --help"

Options:
  -h, --help     show this help
  -v, --version  print the version

Library: import { Pool } from 'lifeguard'  (see README.md and docs/)`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const COMMANDS = ['doctor', 'dashboard'];

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.length === 0) {
    console.error(`lifeguard: no command given\n\n${HELP}`);
    return 2;
  }
  // A first word that is not an option is a command: a misspelt one is named as such, before any of
  // its options can be taken for the top level's own.
  const first = argv[0] ?? '';
  if (!first.startsWith('-') && !COMMANDS.includes(first)) {
    console.error(`lifeguard: unknown command "${first}" (commands: ${COMMANDS.join(', ')})\n\n${HELP}`);
    return 2;
  }
  // Each command loads only its own modules: the doctor's start-up is part of what a sample costs.
  if (argv[0] === 'dashboard') return (await import('../dashboard/cli.js')).runDashboardCommand(argv.slice(1));
  if (argv[0] === 'doctor') {
    // `lifeguard doctor --watch | head` : when the reader exits, writes fail with EPIPE; stop quietly then.
    const output = new AbortController();
    const onError = (error: NodeJS.ErrnoException): void => {
      if (error.code !== 'EPIPE') throw error;
      output.abort(error);
    };
    // Left attached: an EPIPE can still arrive after the last write, just before the process exits.
    process.stdout.on('error', onError);
    // A one-off report runs for well under a second: V8's optimizing compiler, which starts on the hot loops
    // (a readlink per descriptor, a parse per row), finished too late to pay back its compile time and its
    // memory was 6-7 MB of the peak RSS (66 MB against 59 MB without, same CPU time, for a process of
    // 20,000 sockets). Nor does the young generation grow (it doubles when many objects survive, as a
    // sample's rows do): 56 MB peak against 62 MB, and 10% less wall time, for the same process. (V8 reads
    // the growth factor each time it grows; the maximum size is fixed at start-up.) Long runs (--watch,
    // --serve, --all) keep both.
    if (!argv.some((a) => a === '--watch' || a === '--all' || a.startsWith('--serve'))) (await import('node:v8')).setFlagsFromString('--no-opt --semi-space-growth-factor=1');
    const { doctorCommand } = await import('./doctor.js');
    return doctorCommand(argv.slice(1), {
      out: (text) => { if (!output.signal.aborted) process.stdout.write(`${text}\n`); },
      err: (text) => { process.stderr.write(`${text}\n`); },
      isTTY: process.stdout.isTTY,
      version,
      outputClosed: output.signal,
    });
  }
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
  if (parsed.values.help === true) {
    console.log(HELP);
    return 0;
  }
  console.error(`lifeguard: ${parsed.positionals.length === 0 ? 'no command given' : `unknown command "${parsed.positionals[0] ?? ''}"`}\n\n${HELP}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
