// One measurement of the HTTP benchmark, in a client process of its own (see benchHttp): prints JSON.
import { HTTP_LIBRARIES, measureHttpOnce, type HttpLibrary } from './http.js';

const [library, port, seconds] = process.argv.slice(2);
if (!HTTP_LIBRARIES.includes(library as HttpLibrary) || port === undefined || seconds === undefined) {
  console.error('usage: http-worker <library> <port> <seconds>');
  process.exit(2);
}
process.stdout.write(JSON.stringify(await measureHttpOnce(library as HttpLibrary, Number(port), Number(seconds))));
