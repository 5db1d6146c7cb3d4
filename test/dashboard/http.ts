import http from 'node:http';

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One request on its own connection (no agent keeps a socket around after the test). */
export function request(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads the first `count` server-sent events of `url`, then hangs up; fails after `timeoutMs`. */
export function events(url: string, count: number, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false }, (res) => {
      const got: string[] = [];
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (data !== '') got.push(data);
          if (got.length === count) {
            req.destroy();
            resolve(got);
            return;
          }
        }
      });
      res.on('error', () => undefined);
    });
    // An idle socket timer, gone with the socket: no handle outlives the call.
    req.setTimeout(timeoutMs, () => { req.destroy(new Error(`no ${count} events from ${url} within ${timeoutMs} ms`)); });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `check` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
