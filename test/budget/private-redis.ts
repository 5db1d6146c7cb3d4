/**
 * A throwaway redis-server on a free loopback port, for tests that stop and restart Redis (never the
 * shared instance). Nothing is persisted. `stop()` kills it (SIGKILL: the abrupt failure the tests are
 * about); `start()` starts it again on the same port, empty.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
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
