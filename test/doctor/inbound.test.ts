import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { diagnose, diagnoseSelf, renderText } from '../../src/doctor/index.js';
import { guardServer } from '../../src/server/index.js';
import { canCountSockets } from '../support/sockets.js';
import { inboundScene, serverSideSockets, waitFor } from '../server/helpers.js';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => { server.listen(0, '127.0.0.1', () => { resolve((server.address() as net.AddressInfo).port); }); });
}

describe('the doctor\'s inbound view (in-process)', { skip: canCountSockets() ? false : 'needs /proc' }, () => {
  it('lists each guarded server\'s sockets with route, age and the kernel\'s state: the half-closed one in CLOSE_WAIT with its owner', async () => {
    const { webGuard, webPort, rawPort, close } = await inboundScene();
    try {
      await waitFor('the poll in flight', () => webGuard.stats().connections.active === 1);
      await waitFor('CLOSE_WAIT in the kernel', () => serverSideSockets(rawPort, 'CLOSE_WAIT') === 1);
      const report = await diagnoseSelf({ samples: 1 });
      const api = report.servers?.find((s) => s.name === 'api');
      assert.ok(api, `servers: ${JSON.stringify(report.servers?.map((s) => s.name))}`);
      assert.equal(api.port, webPort);
      assert.equal(api.sockets.length, 1);
      assert.equal(api.sockets[0]?.owner, 'GET /poll');
      assert.equal(api.sockets[0]?.state, 'active');
      assert.equal(api.sockets[0]?.kernelState, 'ESTABLISHED');
      assert.equal(api.untracked, 0);
      const couch = report.servers?.find((s) => s.name === 'couch');
      assert.ok(couch);
      assert.equal(couch.sockets[0]?.state, 'half-closed');
      assert.equal(couch.sockets[0]?.kernelState, 'CLOSE_WAIT', 'the guard\'s socket is the kernel\'s CLOSE_WAIT one');
      assert.equal(couch.kernel.CLOSE_WAIT, 1);
      assert.ok((JSON.parse(JSON.stringify(report)) as { servers: unknown[] }).servers.length >= 2, 'JSON-ready');

      const text = renderText(report);
      assert.match(text, /Inbound: \d+ servers? guarded by lifeguard\/server:/);
      assert.match(text, new RegExp(`api :${webPort}: 1 open \\(active 1,`));
      assert.match(text, /127\.0\.0\.1:\d+ {2}GET \/poll {2}active, open \d+ m?s, kernel ESTABLISHED/);
      assert.match(text, /127\.0\.0\.1:\d+ {2}\(no request yet\) {2}half-closed, open \d+ m?s, half-closed \d+ m?s ago, kernel CLOSE_WAIT/);
      assert.doesNotMatch(text, /token=secret/);

      // Regression: the CLOSE_WAIT finding called the guarded server's socket "not owned by any Lifeguard pool".
      const closeWait = report.findings.find((f) => f.code === 'LG_DOCTOR_CLOSE_WAIT');
      assert.ok(closeWait, 'a CLOSE_WAIT finding');
      assert.match(closeWait.title, /1 accepted by a guarded server/);
      const line = closeWait.details.find((d) => d.includes(`:${rawPort} -> `));
      assert.match(line ?? '', /: accepted by server "couch" \(no request yet\), half-closed, half-closed \d+ m?s ago, open \d+ m?s$/);
      assert.equal((closeWait.data as { acceptedByGuardedServer?: number }).acceptedByGuardedServer, 1);

      const outside = await diagnose({ samples: 1 });
      assert.equal(outside.servers, undefined, 'out of process the doctor cannot see the guards');
    } finally {
      await close();
    }
  });

  it('counts sockets on the port the guard does not track (accepted before guardServer())', async () => {
    const accepted: net.Socket[] = [];
    const raw = net.createServer({ allowHalfOpen: true }, (s) => { accepted.push(s); s.resume(); });
    const port = await listen(raw);
    const early = net.connect({ port, host: '127.0.0.1' });
    await waitFor('accepted', () => accepted.length === 1);
    const guard = guardServer(raw, { name: 'late' });
    guard.on('warning', () => { /* LG_SERVER_UNTRACKED */ });
    try {
      const report = await diagnoseSelf({ samples: 1 });
      const late = report.servers?.find((s) => s.name === 'late');
      assert.equal(late?.untracked, 1);
      assert.match(renderText(report), /late :\d+: 0 open .*1 not tracked by the guard/);
    } finally {
      early.destroy();
      for (const s of accepted) s.destroy();
      guard.close();
      await new Promise((resolve) => raw.close(resolve));
    }
  });
});
