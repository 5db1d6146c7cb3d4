// The client process of one library in the HTTP benchmark: takes commands on stdin (see runHttpWorker).
import readline from 'node:readline';
import { HTTP_LIBRARIES, runHttpWorker, type HttpLibrary } from './http.js';

const [library, port] = process.argv.slice(2);
if (!HTTP_LIBRARIES.includes(library as HttpLibrary) || port === undefined) {
  console.error('usage: http-worker <library> <port>');
  process.exit(2);
}
await runHttpWorker(library as HttpLibrary, Number(port), readline.createInterface({ input: process.stdin }), (json) => {
  process.stdout.write(`${json}\n`);
});
