// Grant server throughput and fan-out, over real HTTP with real IdP tokens, SQLite in a file:
//   lifecycles_per_s_sqlite — request → auto-approve → activate (grant active) → release, per second, with
//                             concurrent clients; credentials are a no-op provider (the database side has its own
//                             benchmark), so this measures the server: auth, policy, risk, storage, audit, events.
//   baseline_rps            — authenticated GET /v1/me in the same run (the floor any route pays).
//   fanout_p99_ms           — one event to 1,000 concurrent SSE clients: p99 of (receipt − event instant).
//   api_p99_ms              — what a user's window asks while those 1,000 streams are open and events fan out to
//                             them (GET /v1/me, /v1/grants, /v1/requests in turn, 4 callers): p99 per call, beside
//                             api_idle_p99_ms, the same calls with no stream open, measured first in the same run.
import { agent, keyLine, noop, openEventClients, request } from './support/http';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { startIdp } from '../dev/idp';
import { startGrantServer } from '../dev/grant-server';
import { serviceDir } from '../dev/run-dir';



async function runFor(ms: number, concurrency: number, op: () => Promise<void>): Promise<number> {
  let done = 0;
  const until = Date.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      await op();
      done += 1;
    }
  }));
  return done / (ms / 1000);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface LoadInput { url: string; alice: string; bob: string; quick: boolean }
interface LoadOutput { lifecycles: number; baseline: number; latencies: number[]; clients: number; api: number[]; apiIdle: number[] }

const API_PATHS = ['/v1/me', '/v1/grants', '/v1/requests'];

/** A user's window asking the server things, until stopped: each call's latency in ms. */
function apiCallers(base: URL, token: string, callers: number): { stop: () => Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let i = c; running; i++) {
      const path = API_PATHS[i % API_PATHS.length]!;
      const started = performance.now();
      const r = await request(base, 'GET', path, token);
      if (r.status !== 200) throw new Error(`GET ${path} → ${r.status}`);
      times.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  });
  return { stop: async () => { running = false; await Promise.all(loops); return times; } };
}

/** The load generator: in a worker thread, so clients and server each have a core (2-core machine). */
async function load(input: LoadInput): Promise<LoadOutput> {
  const base = new URL(input.url);
  const { alice, bob } = input;
  const seconds = input.quick ? 4 : 10;
  const keys = Array.from({ length: input.quick ? 4_000 : 10_000 }, keyLine);
  let k = 0;

  // Warm-up: JIT on both sides, SQLite pages.
  await runFor(500, 8, async () => { await request(base, 'GET', '/v1/me', alice); });

  const baseline = await runFor(seconds * 500, 32, async () => {
    const r = await request(base, 'GET', '/v1/me', alice);
    if (r.status !== 200) throw new Error(`GET /v1/me → ${r.status}`);
  });

  parentPort?.postMessage({ phase: 'lifecycles-start' });
  let lifecycleCount = 0;
  const lifecycles = await runFor(seconds * 1000, 16, async () => {
    lifecycleCount += 1;
    const created = await request(base, 'POST', '/v1/requests', alice, { resourceId: 'staging-users', level: 'read', durationSeconds: 600, deviceId: 'bench-device-1' });
    if (created.status !== 201 || created.json.request.state !== 'approved') throw new Error(`create → ${created.status} ${JSON.stringify(created.json)}`);
    const activated = await request(base, 'POST', `/v1/requests/${created.json.request.id}/activate`, alice, { publicKey: keys[k++ % keys.length] });
    if (activated.status !== 201) throw new Error(`activate → ${activated.status} ${JSON.stringify(activated.json)}`);
    const released = await request(base, 'POST', `/v1/grants/${activated.json.grant.id}/release`, alice, {});
    if (released.status !== 200) throw new Error(`release → ${released.status}`);
  });
  parentPort?.postMessage({ phase: 'lifecycles-end', count: lifecycleCount });

  const idleCalls = apiCallers(base, alice, 4);
  await new Promise((r) => setTimeout(r, input.quick ? 2_000 : 5_000));
  const apiIdle = await idleCalls.stop();

  // Fan-out: 1,000 SSE clients (bob, a dba: every approval ask reaches them all).
  const clients = 1_000;
  const latencies: number[] = [];
  const expected = new Set<string>();
  const events = await openEventClients(base, bob, clients, (envelope, now) => {
    if (envelope.event.type === 'approval.asked' && expected.has(envelope.event.request.id)) latencies.push(now - Date.parse(envelope.at));
  });
  const rounds = input.quick ? 10 : 30;
  const calls = apiCallers(base, alice, 4);
  for (let i = 0; i < rounds; i++) {
    const before = latencies.length;
    const created = await request(base, 'POST', '/v1/requests', alice, { resourceId: 'prod-orders', level: 'read', reason: `bench ${i}`, deviceId: 'bench-device-1' });
    expected.add(created.json.request.id);
    const deadline = Date.now() + 5_000;
    while (latencies.length < before + clients && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    if (latencies.length < before + clients) throw new Error(`round ${i}: only ${latencies.length - before} of ${clients} clients got the event`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const api = await calls.stop();
  events.close();
  agent.destroy();
  return { lifecycles, baseline, latencies, clients, api, apiIdle };
}

if (!isMainThread && (workerData as { benchServerLoad?: LoadInput } | undefined)?.benchServerLoad) {
  void load((workerData as { benchServerLoad: LoadInput }).benchServerLoad).then((out) => parentPort!.postMessage({ ok: true, out }), (error) => parentPort!.postMessage({ ok: false, error: String(error?.stack ?? error) }));
}

export default async function bench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const idp = await startIdp({ accessTokenTtlSeconds: 3600 });
  const dataDir = serviceDir('bench-server');
  const server = await startGrantServer({
    idp, dataDir, credentials: noop,
    overrides: {
      storage: { url: `sqlite:${join(dataDir, 'stint.db')}` },
      policies: { 'staging-self-service': { autoApprove: { when: { riskBelow: 101 } } } },
      server: { heartbeatSeconds: 30 },
    },
  });
  try {
    const [alice, bob] = await Promise.all([idp.tokenFor('alice'), idp.tokenFor('bob')]);
    // The worker loads this same file through tsx's API (workers do not inherit the loader hooks).
    const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(bootstrap, { eval: true, workerData: { benchServerLoad: { url: server.url, alice, bob, quick: opts.quick } } });
    // The server's own busy time per lifecycle (event-loop utilization of this thread), which unlike the rate
    // does not depend on what else the machine is doing.
    let eluStart = performance.eventLoopUtilization();
    let serverMsPerLifecycle = NaN;
    const result = await new Promise<LoadOutput>((resolve, reject) => {
      worker.on('message', (m: { ok: true; out: LoadOutput } | { ok: false; error: string } | { phase: string; count?: number }) => {
        if ('phase' in m) {
          if (m.phase === 'lifecycles-start') eluStart = performance.eventLoopUtilization();
          else serverMsPerLifecycle = performance.eventLoopUtilization(eluStart).active / (m.count ?? 1);
          return;
        }
        if (m.ok) resolve(m.out);
        else reject(new Error(m.error));
      });
      worker.once('error', reject);
    });
    await worker.terminate();
    const batches = (await server.server.metrics.writeBatch.get()).values;
    const count = batches.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const sum = batches.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
    return {
      lifecycles_per_s_sqlite: result.lifecycles,
      baseline_rps: result.baseline,
      fanout_p99_ms: percentile(result.latencies, 99),
      fanout_p50_ms: percentile(result.latencies, 50),
      fanout_clients: result.clients,
      api_p99_ms: percentile(result.api, 99),
      api_p50_ms: percentile(result.api, 50),
      api_idle_p99_ms: percentile(result.apiIdle, 99),
      api_calls: result.api.length,
      server_ms_per_lifecycle: serverMsPerLifecycle,
      changes_per_commit: count ? sum / count : NaN,
    };
  } finally {
    await server.close();
    await idp.close();
  }
}
