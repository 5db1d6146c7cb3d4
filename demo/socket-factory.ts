import net from 'node:net';
import type { Factory } from '../src/index.js';

/** Pools raw TCP connections: connect with the pool's abort signal, evict on close, ping to validate. */
export function socketFactory(port: number): Factory<net.Socket> {
  return {
    create: ({ signal, invalidate }) => new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', signal });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        // A socket the server closes while idle is evicted at once (incident 5), not lent later.
        socket.once('close', () => { invalidate(new Error('server closed the connection')); });
        socket.on('error', (error) => { invalidate(error); });
        resolve(socket);
      });
      socket.once('error', reject);
    }),
    destroy: (socket) => {
      socket.destroy();
    },
  };
}

/** Sends one line and waits for its echo. */
export function roundTrip(socket: net.Socket, line: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', (data) => { resolve(data.toString().trim()); });
    socket.write(`${line}\n`);
  });
}
