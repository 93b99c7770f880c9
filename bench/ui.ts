// `npm run bench -- ui [--quick]`: how fast the UI appears and how cheap the tray's model is.
// - renderer_first_paint_ms: first contentful paint of the web-host-served UI in Chromium (median over fresh
//   browser contexts, so nothing is cached), from the Paint Timing API.
// - renderer_ready_ms: until the window shows the agent's state (connected over the WebSocket, getState, rendered).
// - tray_model_ms_p99: p99 of agent/core's trayModel(state, now) over a busy state (the shell rebuilds the menu
//   from it whenever the state or a countdown minute changes).
// The renderer is built first, so the numbers are for the code as it is now (STINT_BENCH_NO_BUILD=1 measures the
// dist/renderer already there instead).
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { chromiumLaunchOptions } from '../dev/chromium';
import { startWebHost } from '../agent/web/host';
import { trayModel } from '../agent/core/models';
import { ALICE, ScriptedAgent, resource } from '../test/e2e/fixtures/scripted-agent';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function busyAgent(): ScriptedAgent {
  const resources = Array.from({ length: 40 }, (_, i) => resource(`db-${String(i).padStart(2, '0')}`, ['production', 'staging', 'dev'][i % 3]!, {
    sensitivity: i % 3 === 0 ? 'high' : 'low',
    policy: i % 3 === 0 ? { autoApprove: false, approvals: [{ group: 'dba', count: 1 }] } : {},
  }));
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: { ...ALICE, approver: true } }, resources } });
  agent.setState({
    grants: Array.from({ length: 6 }, (_, i) => agent.grant({ resourceId: `db-${String(i).padStart(2, '0')}` }, (i + 1) * 17 * 60_000, 15432 + i)),
    requests: Array.from({ length: 6 }, (_, i) => agent.request({ resourceId: `db-${String(i + 10).padStart(2, '0')}`, approvalsNeeded: [{ group: 'dba', count: 1, have: 0 }] })),
    approvals: Array.from({ length: 6 }, (_, i) => agent.request({ resourceId: `db-${String(i + 20).padStart(2, '0')}`, requester: `user${i}`, reason: 'INC-1 fix' })),
  });
  return agent;
}

export default async function (opts: { quick: boolean }): Promise<Record<string, number | string>> {
  if (!process.env.STINT_BENCH_NO_BUILD) execFileSync('npx', ['vite', 'build', '--logLevel', 'error'], { stdio: 'inherit' });
  const agent = busyAgent();

  // Tray model: pure, so time many calls with a moving `now` (countdowns change the text).
  const iterations = opts.quick ? 2_000 : 20_000;
  const t0 = Date.now();
  for (let i = 0; i < 500; i++) trayModel(agent.current, t0 + i * 1_000); // warm up the JIT first
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    trayModel(agent.current, t0 + i * 1_000);
    times.push(performance.now() - start);
  }

  const host = await startWebHost({ staticDir: 'dist/renderer', agent });
  const browser = await chromium.launch(chromiumLaunchOptions);
  const paints: number[] = [];
  const ready: number[] = [];
  try {
    const runs = opts.quick ? 5 : 20;
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(host.url);
      paints.push(await page.evaluate(() => new Promise<number>((resolve) => {
        new PerformanceObserver((list) => {
          const fcp = list.getEntries().find((e) => e.name === 'first-contentful-paint');
          if (fcp) resolve(fcp.startTime);
        }).observe({ type: 'paint', buffered: true });
      })));
      // Connected and showing the agent's state (the app marks it): page load + WebSocket + getState + render.
      const shown = await page.waitForFunction(() => performance.getEntriesByName('stint:ready').length > 0, undefined, { timeout: 10_000 })
        .then(() => true, () => false);
      if (shown) ready.push(await page.evaluate(() => performance.getEntriesByName('stint:ready')[0]!.startTime));
      await context.close();
    }
  } finally {
    await browser.close();
    await host.close();
  }
  return {
    renderer_first_paint_ms: percentile(paints, 50),
    renderer_first_paint_ms_max: Math.max(...paints),
    // 'not reached' when the UI never connected to the agent (a bug to look at, not a number to compare).
    renderer_ready_ms: ready.length === paints.length ? percentile(ready, 50) : 'not reached',
    tray_model_ms_p99: percentile(times, 99),
    tray_model_ms_p50: percentile(times, 50),
  };
}
