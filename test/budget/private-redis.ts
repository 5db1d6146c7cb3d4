/**
 * Throwaway redis-servers on free loopback ports, for tests that stop, restart or fail over Redis (never
 * the shared instance): one server, a 3-master cluster, and a Sentinel set (1 master, 1 replica, 3
 * sentinels). Nothing is persisted. `stop()` kills it (SIGKILL: the abrupt failure the tests are
 * about); `start()` starts it again on the same port, empty.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { servicesRequired, type ServiceCheck } from '../support/services.js';

/**
 * Whether the tests that need a private redis-server can run: skipped with a message when the binary is
 * missing, or a failure when LIFEGUARD_REQUIRE_SERVICES is set.
 */
export function privateRedisCheck(): ServiceCheck {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0) return { skip: false };
  const message = `redis-server is not installed (${probe.error?.message ?? probe.stderr.trim()}); install it with: apt-get install -y redis-server`;
  if (servicesRequired()) throw new Error(`${message}. LIFEGUARD_REQUIRE_SERVICES is set, so this fails instead of skipping`);
  return { skip: `${message} (set LIFEGUARD_REQUIRE_SERVICES=1 to make this a failure)` };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => { done(data.toString('latin1').startsWith('+PONG')); });
    socket.once('error', () => { done(false); });
    socket.setTimeout(500, () => { done(false); });
  });
}

export class PrivateRedis {
  readonly port: number;
  #child: ChildProcess | null = null;

  private constructor(port: number) {
    this.port = port;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    return redis;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  async start(): Promise<void> {
    if (this.#child !== null) return;
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    this.#child = child;
    child.once('exit', () => {
      if (this.#child === child) this.#child = null;
    });
    const deadline = Date.now() + 5000;
    while (!(await answersPing(this.port))) {
      if (this.#child !== child) throw new Error(`redis-server on port ${this.port} exited at start`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not answer PING within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Kills the server (SIGKILL) and waits until it has exited. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.#child = null;
  }
}

const execFileAsync = promisify(execFile);

/** Runs redis-cli against a loopback port; resolves with its output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
  return stdout;
}

/** A free loopback port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const bus = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      bus.once('error', () => { resolve(false); });
      bus.listen(port + 10_000, '127.0.0.1', () => { resolve(true); });
    });
    if (ok) await new Promise<void>((resolve) => bus.close(() => { resolve(); }));
    if (ok) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

async function waitFor(what: string, timeoutMs: number, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function spawnServer(args: string[]): ChildProcess {
  return spawn('redis-server', args, { stdio: 'ignore' });
}

async function killAll(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGKILL');
  })));
}

/** A throwaway Redis Cluster of `masters` masters (no replicas) on loopback ports, created with redis-cli --cluster create. */
export class PrivateCluster {
  readonly ports: readonly number[];
  readonly #children: ChildProcess[];
  readonly #dir: string;

  private constructor(ports: number[], children: ChildProcess[], dir: string) {
    this.ports = ports;
    this.#children = children;
    this.#dir = dir;
  }

  static async start(masters = 3): Promise<PrivateCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), 'lg-cluster-'));
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) ports.push(await freeClusterPort());
    const children = ports.map((port) => spawnServer(['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning']));
    const cluster = new PrivateCluster(ports, children, dir);
    try {
      for (const port of ports) await waitFor(`cluster node ${port} answers`, 5000, () => answersPing(port));
      await execFileAsync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
      for (const port of ports) await waitFor(`cluster node ${port} is ok`, 15_000, async () => (await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async stop(): Promise<void> {
    await killAll(this.#children);
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/** One master, one replica and three sentinels (quorum 2) on loopback ports, monitoring "mymaster". */
export class PrivateSentinelSet {
  static readonly NAME = 'mymaster';
  readonly redisPorts: readonly number[];
  readonly sentinelPorts: readonly number[];
  readonly #children: ChildProcess[];
  readonly #dir: string;

  private constructor(redisPorts: number[], sentinelPorts: number[], children: ChildProcess[], dir: string) {
    this.redisPorts = redisPorts;
    this.sentinelPorts = sentinelPorts;
    this.#children = children;
    this.#dir = dir;
  }

  /**
   * Starts a set, trying a second time with fresh ports if the first does not form. Ports come from
   * freePort(), which can lose a port to another process between its close and the server's bind (the
   * suite runs two files at once, one of them opening thousands of loopback connections); a sentinel that
   * exits then leaves the set unformed. The error names the servers that exited, with their codes.
   */
  static async start(): Promise<PrivateSentinelSet> {
    try {
      return await PrivateSentinelSet.#startOnce();
    } catch (first) {
      try {
        return await PrivateSentinelSet.#startOnce();
      } catch (second) {
        throw new AggregateError([first, second], `a private Sentinel set did not form twice: ${(second as Error).message}`);
      }
    }
  }

  static async #startOnce(): Promise<PrivateSentinelSet> {
    const dir = await mkdtemp(path.join(tmpdir(), 'lg-sentinel-'));
    const master = await freePort();
    const replica = await freePort();
    const sentinels = [await freePort(), await freePort(), await freePort()];
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--dir', dir];
    const children = [spawnServer(['--port', String(master), ...common]), spawnServer(['--port', String(replica), '--replicaof', '127.0.0.1', String(master), ...common])];
    const set = new PrivateSentinelSet([master, replica], sentinels, children, dir);
    const exited: string[] = [];
    try {
      await waitFor('the replica is in sync', 10_000, async () => (await redisCli(replica, 'info', 'replication')).includes('master_link_status:up'));
      for (const port of sentinels) {
        const file = path.join(dir, `sentinel-${port}.conf`);
        await writeFile(file, [
          `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
          `sentinel monitor ${PrivateSentinelSet.NAME} 127.0.0.1 ${master} 2`,
          `sentinel down-after-milliseconds ${PrivateSentinelSet.NAME} 2000`,
          `sentinel failover-timeout ${PrivateSentinelSet.NAME} 6000`,
          `sentinel parallel-syncs ${PrivateSentinelSet.NAME} 1`, '',
        ].join('\n'));
        const child = spawn('redis-server', [file, '--sentinel', '--loglevel', 'warning'], { stdio: 'ignore' });
        child.on('exit', (code, signal) => { exited.push(`sentinel ${port} exited (${signal ?? `code ${String(code)}`})`); });
        children.push(child);
      }
      for (const port of sentinels) {
        await waitFor(`sentinel ${port} sees the replica and the other sentinels`, 20_000, async () => {
          const info = await redisCli(port, 'sentinel', 'master', PrivateSentinelSet.NAME);
          return /num-slaves\n1\n/.test(info) && /num-other-sentinels\n2\n/.test(info);
        });
      }
    } catch (error) {
      const early = [...exited]; // before stop(), which ends every child
      await set.stop();
      if (early.length > 0 && error instanceof Error) error.message += ` (${early.join(', ')})`;
      throw error;
    }
    return set;
  }

  get sentinels(): { host: string; port: number }[] {
    return this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** The master's port, as the first sentinel reports it. */
  async masterPort(): Promise<number> {
    const out = (await redisCli(this.sentinelPorts[0] ?? 0, 'sentinel', 'get-master-addr-by-name', PrivateSentinelSet.NAME)).trim().split('\n');
    return Number(out[1]);
  }

  /**
   * Forces a failover (SENTINEL FAILOVER, retried while the sentinel has no suitable replica yet), and
   * waits until every sentinel names the new master and the old one replicates from it.
   */
  async failover(): Promise<{ from: number; to: number }> {
    const from = await this.masterPort();
    const to = this.redisPorts.find((p) => p !== from) ?? 0;
    await waitFor(`the replica on ${to} is in sync`, 20_000, async () => (await redisCli(to, 'info', 'replication')).includes('master_link_status:up'));
    await waitFor('a sentinel accepts SENTINEL FAILOVER', 30_000, async () => (await redisCli(this.sentinelPorts[0] ?? 0, 'sentinel', 'failover', PrivateSentinelSet.NAME)).startsWith('OK'));
    for (const port of this.sentinelPorts) {
      await waitFor(`sentinel ${port} names ${to} as master`, 30_000, async () => (await redisCli(port, 'sentinel', 'get-master-addr-by-name', PrivateSentinelSet.NAME)).includes(String(to)));
    }
    await waitFor(`${to} is master`, 20_000, async () => (await redisCli(to, 'info', 'replication')).includes('role:master'));
    return { from, to };
  }

  async stop(): Promise<void> {
    await killAll(this.#children);
    await rm(this.#dir, { recursive: true, force: true });
  }
}
