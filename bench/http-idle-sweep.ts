/**
 * Sweep of server idle timeouts the server never announces (no Keep-Alive header): how many requests fail
 * because a client reused a socket just as the server closed it. node's http.Agent (keepAlive), undici's
 * Agent, the LifeguardDispatcher and the LifeguardAgent, side by side, each against its own server.
 * Run: `npm run build && node dist/bench/http-idle-sweep.js [idleMs,...] [requests]`.
 */
import http from 'node:http';
import net from 'node:net';
import { Agent, request } from 'undici';
import { LifeguardAgent, LifeguardDispatcher } from '../src/http/index.js';

/** A server that closes each connection `idleMs` after its last response, without a Keep-Alive header. */
async function server(idleMs: number): Promise<{ url: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let timer: NodeJS.Timeout | null = null;
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      if (timer !== null) clearTimeout(timer);
      buffer += chunk.toString('latin1');
      while (buffer.includes('\r\n\r\n')) {
        buffer = buffer.slice(buffer.indexOf('\r\n\r\n') + 4);
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
      timer = setTimeout(() => { socket.end(); }, idleMs);
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`, close: () => { for (const s of sockets) s.destroy(); srv.close(); } };
}

function nodeGet(agent: http.Agent, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
  });
}

type Client = { name: string; get(url: string): Promise<void>; close(): Promise<void> | void };

function clients(): Client[] {
  const nodeAgent = new http.Agent({ keepAlive: true });
  const undiciAgent = new Agent();
  const dispatcher = new LifeguardDispatcher();
  const lgAgent = new LifeguardAgent();
  return [
    { name: 'node http.Agent', get: (u) => nodeGet(nodeAgent, u), close: () => { nodeAgent.destroy(); } },
    { name: 'undici Agent', get: async (u) => { await (await request(u, { dispatcher: undiciAgent })).body.text(); }, close: () => undiciAgent.close() },
    { name: 'LifeguardDispatcher', get: async (u) => { await (await request(u, { dispatcher })).body.text(); }, close: () => dispatcher.close() },
    { name: 'LifeguardAgent', get: (u) => nodeGet(lgAgent, u), close: () => lgAgent.close() },
  ];
}

const idles = (process.argv[2] ?? '200,500').split(',').map(Number);
const requests = Number(process.argv[3] ?? 30);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const idleMs of idles) {
  const list = clients();
  const results = await Promise.all(list.map(async (client) => {
    const srv = await server(idleMs);
    let failed = 0;
    for (let i = 0; i < requests; i++) {
      try {
        await client.get(`${srv.url}/${i}`);
      } catch {
        failed++;
      }
      // Gaps around the server's idle time, where reuse races the server's close.
      await sleep(idleMs + (Math.random() * 6 - 3));
    }
    await client.close();
    srv.close();
    return `${client.name}: ${failed}/${requests} failed`;
  }));
  console.log(`server idle close ${idleMs} ms (no hint): ${results.join('; ')}`);
}
