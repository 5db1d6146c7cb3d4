/**
 * The doctor's figures as Prometheus text (exposition format 0.0.4), for `lifeguard doctor --serve`: a
 * sidecar that samples one process and is scraped. Descriptor figures take the names of prom-client's
 * default process metrics (`process_open_fds`, `process_max_fds`), which mean the same thing.
 */
import type { DiagnosisReport } from './report.js';

/** Peers given a series of their own; the rest are summed under `peer="other"` (bounded cardinality). */
const MAX_PEERS = 50;

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function number(n: number): string {
  return Number.isFinite(n) ? String(n) : n > 0 ? '+Inf' : '-Inf';
}

/** The report as Prometheus text; `up` false (the last sample failed) gives only `<prefix>doctor_up 0`. */
export function renderPrometheus(report: DiagnosisReport | null, options: { readonly prefix?: string; readonly up?: boolean } = {}): string {
  const p = options.prefix ?? 'lifeguard_';
  const out: string[] = [];
  const metric = (name: string, type: 'gauge', help: string, rows: readonly (readonly [Readonly<Record<string, string>>, number])[]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(',');
      out.push(`${name}${text === '' ? '' : `{${text}}`} ${number(value)}`);
    }
  };
  const up = options.up !== false && report !== null;
  metric(`${p}doctor_up`, 'gauge', 'Whether the last sample of the process succeeded (1) or failed (0: exited, permission).', [[{}, up ? 1 : 0]]);
  if (!up) return `${out.join('\n')}\n`;
  const byState = new Map<string, number>();
  const byPeer = new Map<string, Map<string, number>>();
  const peerTotals = new Map<string, number>();
  for (const g of report.groups) {
    if (g.count === 0) continue;
    byState.set(g.state, (byState.get(g.state) ?? 0) + g.count);
    peerTotals.set(g.peer, (peerTotals.get(g.peer) ?? 0) + g.count);
  }
  const kept = new Set([...peerTotals].sort((a, b) => b[1] - a[1]).slice(0, MAX_PEERS).map(([peer]) => peer));
  for (const g of report.groups) {
    if (g.count === 0) continue;
    const peer = kept.has(g.peer) ? g.peer : 'other';
    const states = byPeer.get(peer) ?? new Map<string, number>();
    states.set(g.state, (states.get(g.state) ?? 0) + g.count);
    byPeer.set(peer, states);
  }
  metric(`${p}doctor_sockets`, 'gauge', 'TCP sockets of the process by state.', [...byState].map(([state, n]) => [{ state }, n] as const));
  metric(`${p}doctor_peer_sockets`, 'gauge', `TCP sockets of the process by peer (remote endpoint, "inbound :PORT", "listen ADDRESS:PORT"; past ${MAX_PEERS} peers, "other") and state.`,
    [...byPeer].flatMap(([peer, states]) => [...states].map(([state, n]) => [{ peer, state }, n] as const)));
  let oldest = 0;
  if ((byState.get('CLOSE_WAIT') ?? 0) > 0) for (const s of report.sockets) if (s.state === 'CLOSE_WAIT' && s.inStateMs > oldest) oldest = s.inStateMs;
  metric(`${p}doctor_close_wait_oldest_seconds`, 'gauge', 'How long the oldest CLOSE_WAIT socket has been seen in that state (by sampling: a lower bound); 0 when none.', [[{}, oldest / 1000]]);
  metric('process_open_fds', 'gauge', 'Number of open file descriptors.', [[{}, report.fds.count]]);
  metric('process_max_fds', 'gauge', 'Maximum number of open file descriptors (soft limit).', [[{}, report.fds.limit ?? Infinity]]);
  metric(`${p}doctor_threads`, 'gauge', 'Threads of the process.', [[{}, report.threads.count]]);
  const findings = new Map<string, { code: string; severity: string; n: number }>();
  for (const f of report.findings) {
    const key = `${f.code}|${f.severity}`;
    const entry = findings.get(key) ?? { code: f.code, severity: f.severity, n: 0 };
    entry.n++;
    findings.set(key, entry);
  }
  metric(`${p}doctor_findings`, 'gauge', 'Findings of the last report, by code and severity (see docs/doctor.md).', [...findings.values()].map((f) => [{ code: f.code, severity: f.severity }, f.n] as const));
  return `${out.join('\n')}\n`;
}
