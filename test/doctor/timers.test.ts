import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diagnoseSelf, Doctor } from '../../src/doctor/index.js';

const ALL_TIMERS = "Timeout (unref'd included)";

/** Leaks `n` unref'd intervals into `into` (the test clears them at the end). */
function leak(into: NodeJS.Timeout[], n: number): void {
  for (let i = 0; i < n; i++) into.push(setInterval(() => undefined, 60_000).unref());
}

/** Takes one sample first, then `rounds` more with `perRound` intervals leaked before each; returns the report. */
async function leakBetweenSamples(doctor: Doctor, into: NodeJS.Timeout[], rounds: number, perRound: number) {
  await doctor.sample();
  for (let round = 0; round < rounds; round++) {
    leak(into, perRound);
    await doctor.sample();
  }
  return doctor.report();
}

describe('the in-process doctor counts timers, unref\'d ones included', { skip: process.platform === 'linux' ? false : 'the doctor reads Linux /proc' }, () => {
  it('raises LG_DOCTOR_HANDLE_GROWTH for 1,000 leaked unref\'d intervals (getActiveResourcesInfo() lists none of them)', async () => {
    const leaked: NodeJS.Timeout[] = [];
    const doctor = new Doctor({ self: true, samples: 5, pools: [] });
    try {
      // Counting starts with the first sample; then the leak, between samples: 250 unref'd intervals
      // each time, never cleared, 1,000 in all.
      const report = await leakBetweenSamples(doctor, leaked, 4, 250);
      const counted = report.handles?.[ALL_TIMERS];
      assert.ok(counted !== undefined, `handles: ${JSON.stringify(report.handles)}`);
      // Other timers of the process come and go: each step is the 250 leaked, give or take a few.
      counted.trend.forEach((n, i) => { assert.ok(Math.abs(n - 250 * i) < 20, `timers counted: ${counted.trend.join(' -> ')}`); });
      assert.ok(counted.count >= 1000, `timers counted: ${counted.trend.join(' -> ')}`);
      const finding = report.findings.find((f) => f.code === 'LG_DOCTOR_HANDLE_GROWTH' && f.data['type'] === ALL_TIMERS);
      assert.ok(finding, `findings: ${report.findings.map((f) => `${f.code} ${f.title}`).join('; ')}`);
      assert.match(finding.title, /Timeout \(unref'd included\) handles grew from \d+ to \d+ over 5 samples/);
      // The ref'd count Node reports cannot see them.
      const refd = report.handles?.['Timeout'];
      assert.ok((refd?.count ?? 0) < 10, `getActiveResourcesInfo() Timeouts: ${refd?.count ?? 0}`);
    } finally {
      doctor.close();
      for (const timer of leaked) clearInterval(timer);
    }
  });

  it('counts unref\'d intervals leaked before the first sample: 1,000 created before diagnoseSelf() are counted (the count started at 0 there)', async () => {
    const leaked: NodeJS.Timeout[] = [];
    try {
      leak(leaked, 1000);
      const report = await diagnoseSelf({ samples: 2, intervalMs: 10, pools: [] });
      const counted = report.handles?.[ALL_TIMERS];
      assert.ok(counted !== undefined, `handles: ${JSON.stringify(report.handles)}`);
      counted.trend.forEach((n) => { assert.ok(n >= 1000 && n < 1020, `timers counted: ${counted.trend.join(' -> ')}`); });
    } finally {
      for (const timer of leaked) clearInterval(timer);
    }
  });

  it('raises LG_DOCTOR_HANDLE_GROWTH for a leak that began before the first sample, counting every leaked interval (1,000 before, 250 more between samples)', async () => {
    const leaked: NodeJS.Timeout[] = [];
    const doctor = new Doctor({ self: true, samples: 4, pools: [] });
    try {
      leak(leaked, 1000);
      const report = await leakBetweenSamples(doctor, leaked, 3, 250);
      const counted = report.handles?.[ALL_TIMERS];
      assert.ok(counted !== undefined, `handles: ${JSON.stringify(report.handles)}`);
      counted.trend.forEach((n, i) => { assert.ok(Math.abs(n - (1000 + 250 * i)) < 20, `timers counted: ${counted.trend.join(' -> ')}`); });
      const finding = report.findings.find((f) => f.code === 'LG_DOCTOR_HANDLE_GROWTH' && f.data['type'] === ALL_TIMERS);
      assert.ok(finding, `findings: ${report.findings.map((f) => `${f.code} ${f.title}`).join('; ')}`);
      assert.match(finding.title, /grew from 10\d\d to 17\d\d over 4 samples/);
    } finally {
      doctor.close();
      for (const timer of leaked) clearInterval(timer);
    }
  });

  it('does not count timers that were cleared or fired before the first sample', async () => {
    const cleared = Array.from({ length: 300 }, () => setInterval(() => undefined, 60_000).unref());
    for (const timer of cleared) clearInterval(timer);
    await new Promise((resolve) => { setTimeout(resolve, 1).unref(); setTimeout(resolve, 5); });
    const report = await diagnoseSelf({ samples: 1, pools: [] });
    assert.ok((report.handles?.[ALL_TIMERS]?.count ?? 0) < 20, `timers counted: ${report.handles?.[ALL_TIMERS]?.count}`);
  });

  it('stops counting when the diagnosis ends: no hook left, cleared timers not counted', async () => {
    const first = await diagnoseSelf({ samples: 2, intervalMs: 10, pools: [] });
    assert.ok((first.handles?.[ALL_TIMERS]?.count ?? 0) < 10);
    // A timer set and cleared between diagnoses is not counted by the next one (it starts from 0).
    const t = setInterval(() => undefined, 1000).unref();
    clearInterval(t);
    const second = await diagnoseSelf({ samples: 2, intervalMs: 10, pools: [] });
    assert.ok((second.handles?.[ALL_TIMERS]?.trend[0] ?? 0) < 10);
    assert.equal(second.findings.some((f) => f.code === 'LG_DOCTOR_HANDLE_GROWTH' && f.data['type'] === ALL_TIMERS), false);
  });
});
