import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { guardServer, InvalidOptionError, ServerCodes, ServerGuardError, servers, type ServerGuardOptions, type ServerWarning } from '../../src/server/index.js';
import { closeServer, listen } from './helpers.js';

function rejects(options: unknown, option: string, message: RegExp): void {
  assert.throws(() => guardServer(net.createServer(), options as ServerGuardOptions), (error: unknown) => {
    assert.ok(error instanceof InvalidOptionError, String(error));
    assert.equal(error.code, 'LG_INVALID_OPTION');
    assert.equal(error.option, option);
    assert.match(error.message, message);
    return true;
  });
}

describe('guardServer() options', () => {
  it('rejects bad options at construction, naming the option, what was expected and what was given', () => {
    rejects({ halfClosedTimeoutMs: 0 }, 'halfClosedTimeoutMs', /invalid option "halfClosedTimeoutMs": expected a number >= 10 \(or Infinity\), got number 0/);
    rejects({ halfClosedTimeoutMs: '5s' }, 'halfClosedTimeoutMs', /got the string "5s"/);
    rejects({ idleTimeoutMs: -1 }, 'idleTimeoutMs', /got number -1/);
    rejects({ checkIntervalMs: 1 }, 'checkIntervalMs', /expected a number >= 10, got number 1/);
    rejects({ destroyAfterEndMs: NaN }, 'destroyAfterEndMs', /got number NaN/);
    rejects({ keepAliveHint: 'fast' }, 'keepAliveHint', /expected "node", "safe" or an integer number of seconds >= 0, got the string "fast"/);
    rejects({ keepAliveHint: 1.5 }, 'keepAliveHint', /got number 1.5/);
    rejects({ shutdownTimeoutMs: Infinity }, 'shutdownTimeoutMs', /got number Infinity/);
    rejects({ shutdownDelayMs: 10_000 }, 'shutdownDelayMs', /must be < shutdownTimeoutMs \(10000\).*got number 10000/);
    rejects({ healthCheckPath: 'healthz' }, 'healthCheckPath', /a path starting with "\/", got the string "healthz"/);
    rejects({ beforeShutdown: 'later' }, 'beforeShutdown', /a function or undefined, got the string "later"/);
    rejects({ closeConnection: 1 }, 'closeConnection', /got number 1/);
    rejects({ idleGraceMs: 5 }, 'idleGraceMs', /expected 0 or a number >= 10, got number 5/);
    rejects({ name: '' }, 'name', /a non-empty string, got the string ""/);
    rejects({ clock: {} }, 'clock', /a Clock/);
    rejects({ halfClosedTimeout: 100 }, 'halfClosedTimeout', /unknown option "halfClosedTimeout" for guardServer\(\); known options: .*halfClosedTimeoutMs/);
    rejects([], 'options', /expected an object or undefined, got an array/);
  });

  it('rejects what is not a server, and a server guarded twice', () => {
    assert.throws(() => guardServer(Object.create(null) as net.Server), (e: unknown) => e instanceof ServerGuardError && e.code === ServerCodes.NOT_A_SERVER);
    const server = net.createServer();
    const first = guardServer(server, { name: 'first' });
    assert.throws(() => guardServer(server), (e: unknown) => e instanceof ServerGuardError && e.code === ServerCodes.ALREADY_GUARDED && /"first"/.test(e.message));
    first.close();
    const second = guardServer(server);
    assert.ok(servers().includes(second));
    assert.ok(!servers().includes(first));
    second.close();
    assert.equal(server.emit, net.Server.prototype.emit, 'close() puts the server\'s emit back');
  });

  it('rejects a bad shutdown() deadline', () => {
    const guard = guardServer(net.createServer(), { shutdownDelayMs: 500 });
    assert.throws(() => guard.shutdown({ timeoutMs: 5 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeoutMs' && /got number 5/.test(e.message));
    assert.throws(() => guard.shutdown({ timeoutMs: 400 }), (e: unknown) => e instanceof InvalidOptionError && /must be > shutdownDelayMs \(500\)/.test(e.message));
    guard.close();
  });
});

describe('keep-alive alignment', () => {
  async function warningsOf(server: http.Server, options: ServerGuardOptions = {}): Promise<{ warnings: ServerWarning[]; port: number; close: () => Promise<void> }> {
    const guard = guardServer(server, options);
    const warnings: ServerWarning[] = [];
    guard.on('warning', (w) => warnings.push(w));
    const port = await listen(server);
    return { warnings, port, close: () => closeServer(server) };
  }

  function rawResponseHead(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => { socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const end = text.indexOf('\r\n\r\n');
        if (end >= 0) {
          socket.destroy();
          resolve(text.slice(0, end));
        }
      });
      socket.on('error', reject);
    });
  }

  it('warns at start that node\'s default hint equals its keep-alive timeout (clients race the close)', async () => {
    const { warnings, port, close } = await warningsOf(http.createServer((_q, s) => { s.end(); }));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, ServerCodes.KEEPALIVE_HINT);
    assert.match(warnings[0]!.message, /"Keep-Alive: timeout=5" but idle sockets close after 5000 ms \(keepAliveTimeout=5000\).*keepAliveHint: "safe" to send timeout=4/);
    assert.match(await rawResponseHead(port), /\r\nKeep-Alive: timeout=5\r\n/i);
    await close();
  });

  // Regression (found trying the packed package): with no 'warning' listener, each guarded server with node's
  // defaults printed the same process warning, so a test suite that starts a server per test printed one per
  // test. Node prints a warning once per process; so does the guard, per code and configuration.
  it('without a warning listener, the same warning is printed once per process, not once per server', () => {
    const index = new URL('../../src/server/index.js', import.meta.url).href;
    const script = `
      import http from 'node:http';
      import { guardServer } from ${JSON.stringify(index)};
      for (let i = 0; i < 5; i++) {
        const server = http.createServer((_q, s) => s.end());
        guardServer(server);
        await new Promise((r) => server.listen(0, '127.0.0.1', r));
        await new Promise((r) => server.close(r));
      }
      const other = http.createServer({ keepAliveTimeout: 30_000 }, (_q, s) => s.end());
      guardServer(other);
      await new Promise((r) => other.listen(0, '127.0.0.1', r));
      await new Promise((r) => other.close(r));`;
    const { stderr } = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const printed = stderr.split('\n').filter((line) => line.includes('[LG_SERVER_KEEPALIVE_HINT]'));
    assert.equal(printed.length, 2, stderr);
    assert.match(printed[0]!, /server "server-1": responses say "Keep-Alive: timeout=5" .*\(printed once per process; listen to 'warning' on a guard for each\)/);
    assert.match(printed[1]!, /timeout=30" but idle sockets close after 30000 ms/);
  });

  it('keepAliveHint "safe" sends a hint shorter than the real idle close, and does not warn', async () => {
    const { warnings, port, close } = await warningsOf(http.createServer((_q, s) => { s.end(); }), { keepAliveHint: 'safe' });
    assert.deepEqual(warnings, []);
    const head = await rawResponseHead(port);
    assert.match(head, /\r\nKeep-Alive: timeout=4\r\n/i);
    assert.equal(head.match(/keep-alive: timeout/gi)?.length, 1, 'one hint, not node\'s too');
    await close();
  });

  it('the idle close is the shortest of keepAliveTimeout, server.timeout and the guard\'s idleTimeoutMs', async () => {
    const a = http.createServer({ keepAliveTimeout: 30_000 }, (_q, s) => { s.end(); });
    a.timeout = 10_000;
    const first = await warningsOf(a);
    assert.match(first.warnings[0]!.message, /timeout=30" but idle sockets close after 10000 ms \(server.timeout=10000\)/);
    await first.close();

    const b = http.createServer({ keepAliveTimeout: 30_000 }, (_q, s) => { s.end(); });
    const second = await warningsOf(b, { idleTimeoutMs: 20_000, keepAliveHint: 'safe' });
    assert.deepEqual(second.warnings, []);
    assert.match(await rawResponseHead(second.port), /Keep-Alive: timeout=19\r\n/i);
    await second.close();

    const c = http.createServer({ keepAliveTimeout: 30_000 }, (_q, s) => { s.end(); });
    const third = await warningsOf(c, { keepAliveHint: 25 });
    assert.deepEqual(third.warnings, []);
    assert.match(await rawResponseHead(third.port), /Keep-Alive: timeout=25\r\n/i);
    await third.close();
  });

  it('warns when headersTimeout can never fire', async () => {
    const server = http.createServer((_q, s) => { s.end(); });
    server.requestTimeout = 10_000;
    server.headersTimeout = 20_000;
    const { warnings, close } = await warningsOf(server, { keepAliveHint: 'safe' });
    assert.deepEqual(warnings.map((w) => w.code), [ServerCodes.TIMEOUTS]);
    assert.match(warnings[0]!.message, /headersTimeout=20000 is longer than requestTimeout=10000/);
    await close();
  });

  it('checks a server already listening on the next tick, so a listener added right after hears it', async () => {
    const server = http.createServer((_q, s) => { s.end(); });
    await listen(server);
    const guard = guardServer(server);
    const warnings: ServerWarning[] = [];
    guard.on('warning', (w) => warnings.push(w));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(warnings.length, 1);
    await closeServer(server);
  });
});
