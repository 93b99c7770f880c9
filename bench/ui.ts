// `npm run bench -- ui [--quick]`: how fast the UI appears and how cheap the tray's model is, with the real agent
// behind the real web host: the agent is signed in as alice through the dev IdP and busy on the real grant server
// in-process (40 resources; 6 active grants with real tunnels through the OpenSSH bastion; 6 of her requests waiting
// for a DBA; 6 requests of other people waiting for her approval, made over the server's API as those demo users).
// - renderer_first_paint_ms: first contentful paint of the web-host-served UI in Chromium (median over fresh
//   browser contexts, so nothing is cached), from the Paint Timing API.
// - renderer_ready_ms: until the window shows the agent's state (connected over the WebSocket, getState, rendered).
// - tray_model_ms_p99: p99 of agent/core's trayModel(state, now) over that busy state (the shell rebuilds the menu
//   from it whenever the state or a countdown minute changes).
// The renderer is built first, so the numbers are for the code as it is now (STINT_BENCH_NO_BUILD=1 measures the
// dist/renderer already there instead).
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { chromiumLaunchOptions } from '../dev/chromium';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, runDir, sweep, waitFor } from '../dev/run-dir';
import type { Catalog } from '../dev/agent-backend';
import { startWebHost } from '../agent/web/host';
import { trayModel } from '../agent/core/models';
import type { Agent } from '../agent/core/agent';
import { startAgentBackend, signedInAgent } from './support/agent-backend';
import { request } from './support/http';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const id = (i: number) => `db-${String(i).padStart(2, '0')}`;
/** Which of the 40 resources carry what, by index. */
const GRANTED = [1, 2, 4, 5, 7, 8];
const PENDING = [0, 3, 6, 9, 12, 15];
const TO_APPROVE = [30, 31, 32, 33, 34, 35];
const OTHERS = ['erin', 'bob', 'dave'];

/** Engineers get most databases at once; every third waits for a DBA; six are reviewed by an engineer (alice). */
const CATALOG: Catalog = {
  resources: Array.from({ length: 40 }, (_, i) => ({
    id: id(i), environment: ['production', 'staging', 'dev'][i % 3]!, sensitivity: i % 3 === 0 ? 'high' as const : 'low' as const,
    policy: TO_APPROVE.includes(i) ? 'peer-review' : i % 3 === 0 ? 'dba-approves' : 'engineers-at-once',
  })),
  policies: {
    'engineers-at-once': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, autoApprove: { when: { groups: ['engineers'] } } },
    'dba-approves': { requesters: ['engineers'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'dba', count: 1 }] },
    'peer-review': { requesters: ['engineers', 'contractors', 'dba', 'sre-leads'], duration: { default: '1h', max: '4h' }, approvals: [{ from: 'engineers', count: 1 }] },
  },
};

/** Everything through the real server: alice's grants and requests via her agent, the others' over the HTTP API. */
async function makeBusy(agent: Agent, serverUrl: string, tokenFor: (user: string) => Promise<string>): Promise<void> {
  for (const [n, i] of GRANTED.entries()) {
    await agent.api.createRequest({ resourceId: id(i), level: 'read', durationSeconds: (n + 1) * 17 * 60, reason: 'bench' });
  }
  for (const i of PENDING) await agent.api.createRequest({ resourceId: id(i), level: 'write', reason: 'INC-1 fix' });
  for (const [n, i] of TO_APPROVE.entries()) {
    const created = await request(new URL(serverUrl), 'POST', '/v1/requests', await tokenFor(OTHERS[n % OTHERS.length]!), { resourceId: id(i), level: 'read', reason: 'INC-1 fix' });
    if (created.status !== 201) throw new Error(`request as ${OTHERS[n % OTHERS.length]} → ${created.status} ${JSON.stringify(created.json)}`);
  }
  // The approval asks reach alice's agent over its event stream.
  await waitFor('the busy state in the agent', () => {
    const s = agent.state();
    const open = s.grants.filter((g) => g.tunnel?.status === 'open').length;
    const waiting = s.requests.filter((r) => r.state === 'pending_approval').length;
    return open === GRANTED.length && waiting === PENDING.length && s.approvals.length === TO_APPROVE.length ? true : undefined;
  }, 30_000);
}

export default async function (opts: { quick: boolean }): Promise<Record<string, number | string>> {
  if (!process.env.STINT_BENCH_NO_BUILD) execFileSync('npx', ['vite', 'build', '--logLevel', 'error'], { stdio: 'inherit' });
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { backend, server } = await startAgentBackend(stops, CATALOG);
    const ports: Record<string, number> = {};
    for (const i of GRANTED) ports[id(i)] = await freePort();
    const { agent } = await signedInAgent(backend, server, stops, { ports });
    await makeBusy(agent, server.url, (user) => backend.idp.tokenFor(user));
    const state = agent.state();

    // Tray model: pure, so time many calls with a moving `now` (countdowns change the text).
    const iterations = opts.quick ? 2_000 : 20_000;
    const t0 = Date.now();
    for (let i = 0; i < 500; i++) trayModel(state, t0 + i * 1_000); // warm up the JIT first
    const times: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const start = performance.now();
      trayModel(state, t0 + i * 1_000);
      times.push(performance.now() - start);
    }

    const host = await startWebHost({ staticDir: 'dist/renderer', agent });
    stops.push(() => host.close());
    const browser = await chromium.launch(chromiumLaunchOptions);
    stops.push(() => browser.close());
    const paints: number[] = [];
    const ready: number[] = [];
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
    return {
      renderer_first_paint_ms: percentile(paints, 50),
      renderer_first_paint_ms_max: Math.max(...paints),
      // 'not reached' when the UI never connected to the agent (a bug to look at, not a number to compare).
      renderer_ready_ms: ready.length === paints.length ? percentile(ready, 50) : 'not reached',
      tray_model_ms_p99: percentile(times, 99),
      tray_model_ms_p50: percentile(times, 50),
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (ownRoot) {
      sweep(root);
      delete process.env[RUN_DIR_ENV];
    }
  }
}
