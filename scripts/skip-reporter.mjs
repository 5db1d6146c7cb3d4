// A node:test reporter that writes one JSON line per skipped test or suite (name, file, reason) to its
// destination, so the runner's summary can count and name what did not run: node's own "skipped" count
// leaves out a whole suite skipped at the describe() (the browser suite without Chromium).
export default async function* skipReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.skip === undefined || data.skip === false) continue;
    const kind = data.details?.type === 'suite' ? 'suite' : 'test';
    yield `${JSON.stringify({ kind, name: data.name, file: data.file ?? null, reason: data.skip === true ? null : String(data.skip) })}\n`;
  }
}
