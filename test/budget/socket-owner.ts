/**
 * Which process owns a TCP connection, read from the kernel: a server-side socket's remote port is the
 * client's local port, found in /proc/<pid>/net/tcp{,6} on an inode that /proc/<pid>/fd links to.
 * Asynchronous: on a busy machine the tables are large, and reading them synchronously stalled the event
 * loop of the test process for up to a second.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';

async function socketInodes(pid: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`));
      if (match?.[1] !== undefined) inodes.add(match[1]);
    } catch {
      // The descriptor closed while being listed.
    }
  }
  return inodes;
}

/** The pid among `pids` whose TCP socket has local port `port`, or null (none of them, or it closed). */
export async function ownerOfPort(port: number, pids: readonly number[]): Promise<number | null> {
  for (const pid of pids) {
    let inodes: Set<string>;
    try {
      inodes = await socketInodes(pid);
    } catch {
      continue; // exited
    }
    for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10 || !inodes.has(f[9] ?? '')) continue;
        if (parseInt(f[1]?.split(':')[1] ?? '', 16) === port) return pid;
      }
    }
  }
  return null;
}
