import { spawnSync } from 'node:child_process';

/** GNU coreutils' readlink (the doctor's descriptor reader beside the tables needs its -z and -v): not busybox's. */
export const gnuReadlink = process.platform === 'linux' && spawnSync('readlink', ['-vz', '--', '/proc/self/exe']).status === 0;

/** What a doctor source line says of the descriptors: read by readlink beside, or (without GNU readlink) why not. */
export const readerNote = gnuReadlink ? String.raw`\(readlink, beside\)` : String.raw`\(not readlink: .*\)`;
