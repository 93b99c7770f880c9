// Grant servers on PostgreSQL, one and two instances sharing one harness PostgreSQL, over real HTTP with real IdP
// tokens (credentials are a no-op provider, as in bench/server.ts):
//   lifecycles_per_s_pg        — request → auto-approve → activate → release per second, one instance, saturated
//                                 (SATURATING_CLIENTS clients), with lifecycle_p50/p99_ms.
//   lifecycles_per_s_pg_2inst  — the same load spread round-robin over two instances (no sticky sessions), measured
//                                 in windows alternating with the one-instance ones (the VM's speed drifts).
//   lifecycles_per_s_pg_light  — one instance under LIGHT_CLIENTS clients, with lifecycle_p50/p99_ms_light.
//   cross_instance_event_p99_ms — an approval ask created on B reaching SSE clients connected to A: p99 of
//                                 (receipt − event instant).
//   node_/pg_cpu_ms_per_lifecycle — CPU per lifecycle of the one-instance run: this process (load generator and
//                                 instance) and PostgreSQL's backends. On 2 cores their sum bounds the rate.
//   server_ms_per_lifecycle    — the instance's event loop busy time per lifecycle (wall time: on a loaded machine
//                                 it includes time the thread waited for a CPU, e.g. after waking PostgreSQL).
//   instance_/load_cpu_ms_per_lifecycle — CPU per lifecycle of the instance's thread and of the load generator (the
//                                 _2inst keys: both instances' threads; the load generator is a canary for how fast
//                                 the VM was in those windows).
//   lifecycles_per_s_pg_socket — the light run again, connected over PostgreSQL's Unix socket instead of TCP.
// Rates count the lifecycles completed in the steady part of each window (see SETTLE_MS); a kind measured in several
// windows reports the median window (see summary).
// Each instance runs in its own worker thread (its own event loop, as separate processes would); the load runs on
// the main thread.
import { agent, keyLine, noop, openEventClients, request } from './support/http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startIdp } from '../dev/idp';
import { readFileSync } from 'node:fs';
import { startPostgres, type PostgresInstance } from '../dev/postgres';
import { freePort } from '../dev/ports';
import { merge, testConfig } from '../dev/grant-server';
import { buildServer } from '../server/app';
import { validateConfig, type ServerConfigInput } from '../server/config';



/** The instance's write-batch histogram totals (changes, commits), from its metrics endpoint. */
async function writeBatches(base: URL): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(new URL('/metrics', base))).text();
  const value = (suffix: string) => Number(new RegExp(`^stint_write_batch_changes_${suffix} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { sum: value('sum'), count: value('count') };
}

/**
 * CPU time (ms) used so far by each of this PostgreSQL's processes (from /proc; Linux), autovacuum workers left out:
 * one lands in whichever window it happens to run in and would add its whole run to that window's lifecycles.
 */
async function pgCpuByPid(pg: PostgresInstance): Promise<Map<number, number>> {
  const pids = await pg.query<{ pid: number }>("select pid from pg_stat_activity where backend_type <> 'autovacuum worker'", [], 'postgres');
  const tick = 1000 / 100; // USER_HZ
  const cpu = new Map<number, number>();
  for (const { pid } of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      cpu.set(pid, (Number(fields[11]) + Number(fields[12])) * tick);
    } catch {
      // exited meanwhile
    }
  }
  return cpu;
}

/**
 * PostgreSQL CPU between two readings, by process: a backend that exits in between (a pooled connection idle for
 * 30 s closes) takes its whole past with it, and a plain difference of totals went negative.
 */
function pgCpuBetween(first: Map<number, number>, last: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of last) total += ms - (first.get(pid) ?? 0);
  return total;
}

interface Run { count: number; ms: number; durations: number[] }

/** One measured window: lifecycles, their durations, and the CPU spent meanwhile (totals, summed by `summary`). */
interface Measured extends Run { nodeCpuMs: number; pgCpuMs: number; busyMs: number; instanceCpuMs: number; loadCpuMs: number }

// A window's first SETTLE_MS are not measured: every client starts its first lifecycle at once, and none completes
// before about one lifecycle's time has passed (at saturation clients / rate: ~0.6 s for 384 clients at 650/s), so
// the steady state begins after about two. Lifecycles still running when the window closes are not counted
// either (they finish unmeasured). Counting all lifecycles started in the window over its nominal length would
// overstate the rate by the client count per window (~8 % for 128 clients in a 2.5 s window at 600/s).
const SETTLE_MS = 1_200;

/**
 * Run `clients` clients' lifecycles over `bases` for `ms` and measure the steady part, from SETTLE_MS in to the
 * end: lifecycles completed in between, their durations, and the CPU spent meanwhile by this process (load generator
 * and instances), by the serving instances' threads, by the load generator's thread and by PostgreSQL's backends.
 */
async function measured(pg: PostgresInstance, instances: Instance[], bases: URL[], token: string, ms: number, clients: number): Promise<Measured> {
  const snapshot = async () => {
    const instanceCpu = (await Promise.all(instances.map((i) => i.cpuMs()))).reduce((a, b) => a + b, 0);
    return { pg: await pgCpuByPid(pg), cpu: process.cpuUsage(), busy: instances.reduce((sum, i) => sum + i.busyMs(), 0), instanceCpu, load: threadCpuMs(), at: performance.now() };
  };
  const completed: { at: number; ms: number }[] = [];
  const started = performance.now();
  const run = lifecycles(bases, token, ms, clients, (at, duration) => completed.push({ at, ms: duration }));
  await sleep(SETTLE_MS);
  const first = await snapshot();
  await sleep(started + ms - performance.now());
  const last = await snapshot();
  await run;
  const counted = completed.filter((c) => c.at >= first.at && c.at <= last.at);
  const cpu = process.cpuUsage(first.cpu);
  return {
    count: counted.length, ms: last.at - first.at, durations: counted.map((c) => c.ms),
    nodeCpuMs: (cpu.user + cpu.system) / 1000, pgCpuMs: pgCpuBetween(first.pg, last.pg), busyMs: last.busy - first.busy,
    instanceCpuMs: last.instanceCpu - first.instanceCpu, loadCpuMs: last.load - first.load,
  };
}

/** Each window on stderr as it ends: how far the windows of one kind spread shows how much the VM drifted. */
function report(kind: 'one' | 'two', m: Measured): void {
  const per = (ms: number) => (ms / m.count).toFixed(2);
  console.error(`window ${kind}: ${Math.round((m.count / m.ms) * 1000)} lifecycles/s; CPU per lifecycle: instance thread(s) ${per(m.instanceCpuMs)} ms, load generator ${per(m.loadCpuMs)} ms, PostgreSQL ${per(m.pgCpuMs)} ms`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Windows of one kind together: the median window's rate (lifecycles per second), latency percentiles over all of
 * them, and CPU per lifecycle over all of them. The median, not the total: a window something stalled (the first
 * after the warm-up ran at 216, 348 and 388 lifecycles/s in three runs whose other windows ran at ~500–600) moves a
 * total of eight by ~5–8 % and the median not at all; and it is always the same kind's first window.
 */
function summary(windows: Measured[]) {
  const sum = (pick: (m: Measured) => number) => windows.reduce((total, m) => total + pick(m), 0);
  const count = sum((m) => m.count);
  const durations = windows.flatMap((m) => m.durations);
  return {
    rate: median(windows.map((m) => m.count / (m.ms / 1000))), p50Ms: percentile(durations, 50), p99Ms: percentile(durations, 99),
    nodeCpuMs: sum((m) => m.nodeCpuMs) / count, pgCpuMs: sum((m) => m.pgCpuMs) / count, serverMs: sum((m) => m.busyMs) / count,
    instanceCpuMs: sum((m) => m.instanceCpuMs) / count, loadCpuMs: sum((m) => m.loadCpuMs) / count,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return Number.isInteger(middle) ? (sorted[middle - 1]! + sorted[middle]!) / 2 : sorted[Math.floor(middle)]!;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

// ---- an instance, inside a worker thread
interface InstanceInput { config: ServerConfigInput; port: number }
if (!isMainThread && (workerData as { scaleoutInstance?: InstanceInput } | undefined)?.scaleoutInstance) {
  const input = (workerData as { scaleoutInstance: InstanceInput }).scaleoutInstance;
  void (async () => {
    const server = await buildServer({ config: validateConfig(input.config, 'bench config'), credentials: noop, env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' } });
    await server.app.listen({ host: '127.0.0.1', port: input.port });
    parentPort!.on('message', (message: 'stop' | 'cpu') => {
      if (message === 'cpu') parentPort!.postMessage({ cpuMs: threadCpuMs() });
      else void server.close().then(() => parentPort!.postMessage({ stopped: true }));
    });
    parentPort!.postMessage({ ready: true });
  })().catch((error: unknown) => parentPort!.postMessage({ error: String((error as Error)?.stack ?? error) }));
}

/** CPU time (ms, user + system) of the calling thread so far (Linux: /proc/thread-self). */
function threadCpuMs(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
}

interface Instance {
  url: URL;
  /** Milliseconds the instance's event loop has been busy so far (wall time: includes time it waited for a CPU). */
  busyMs: () => number;
  /** CPU milliseconds the instance's thread has used so far. */
  cpuMs: () => Promise<number>;
  stop: () => Promise<void>;
}

async function startInstance(config: ServerConfigInput): Promise<Instance> {
  const port = await freePort();
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { scaleoutInstance: { config: merge(config, { server: { url: `http://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port } } }), port } } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { ready?: true; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error))));
    worker.once('error', reject);
  });
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    busyMs: () => worker.performance.eventLoopUtilization().active,
    cpuMs: () => new Promise<number>((resolve) => {
      const answer = (m: { cpuMs?: number }) => {
        if (m.cpuMs === undefined) return;
        worker.off('message', answer);
        resolve(m.cpuMs);
      };
      worker.on('message', answer);
      worker.postMessage('cpu');
    }),
    stop: async () => {
      await new Promise<void>((resolve) => { worker.once('message', () => resolve()); worker.postMessage('stop'); });
      await worker.terminate();
    },
  };
}

// Throughput is measured at saturation: with more clients waiting, an instance's write batches grow (one commit, one
// audit append and one lock for more changes), so its capacity shows only when the queue is full. Each client runs
// lifecycles back to back, so at saturation a lifecycle's latency is clients / rate (Little's law); the light run
// (16 clients, not saturating) gives the latency a user sees on a busy but not overloaded instance.
// Both kinds get the same clients, enough to saturate two instances (each sees half of them). Measured in
// interleaved windows (bench/RESULTS.md, seventh session): one instance gives ~605 / ~640 / ~635 lifecycles/s at
// 128 / 256 / 384 clients (saturated from 256 on), two give ~610 / ~695 / ~725: at 128 clients two instances were
// not saturated, so that comparison measured the clients, not the second instance.
const SATURATING_CLIENTS = 384;
const LIGHT_CLIENTS = 16;

// Generated once, outside the measured windows (key generation is the agent's work, not the server's). Each client
// draws from its own keys: a key opens one active grant at a time, and a shared ring could hand a key out again
// while a stalled client still holds a grant with it (409 key_in_use, ending the run).
const keys = Array.from({ length: 2_000 }, keyLine);
const keyOf = (client: number, clients: number, lifecycle: number) => {
  const each = Math.floor(keys.length / clients);
  if (each < 1) throw new Error(`at most ${keys.length} clients`);
  return keys[client * each + (lifecycle % each)]!;
};

/** Clients running lifecycles back to back until `ms` have passed; `onDone` hears of each completed one. */
async function lifecycles(bases: URL[], token: string, ms: number, concurrency: number, onDone?: (at: number, ms: number) => void): Promise<void> {
  let done = 0;
  const until = Date.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let own = 0; Date.now() < until; own++) {
      const started = performance.now();
      // No sticky sessions: each step of one lifecycle may land on another instance.
      const at = (step: number) => bases[(worker + step + done) % bases.length]!;
      const created = await request(at(0), 'POST', '/v1/requests', token, { resourceId: 'staging-users', level: 'read', durationSeconds: 600, deviceId: 'bench-device-1' });
      if (created.status !== 201 || created.json.request.state !== 'approved') throw new Error(`create → ${created.status} ${JSON.stringify(created.json)}`);
      const activated = await request(at(1), 'POST', `/v1/requests/${created.json.request.id}/activate`, token, { publicKey: keyOf(worker, concurrency, own) });
      if (activated.status !== 201) throw new Error(`activate → ${activated.status} ${JSON.stringify(activated.json)}`);
      const released = await request(at(2), 'POST', `/v1/grants/${activated.json.grant.id}/release`, token, {});
      if (released.status !== 200) throw new Error(`release → ${released.status}`);
      const now = performance.now();
      onDone?.(now, now - started);
      done += 1;
    }
  }));
}

async function crossInstanceLatencies(a: URL, b: URL, alice: string, bob: string, clients: number, rounds: number): Promise<number[]> {
  // By request id: an event may reach A before B's answer (with the id) reaches us.
  const received = new Map<string, number[]>();
  const events = await openEventClients(a, bob, clients, (envelope, now) => {
    if (envelope.event.type !== 'approval.asked') return;
    const list = received.get(envelope.event.request.id) ?? [];
    list.push(now - Date.parse(envelope.at));
    received.set(envelope.event.request.id, list);
  });
  for (let i = 0; i < rounds; i++) {
    const created = await request(b, 'POST', '/v1/requests', alice, { resourceId: 'prod-orders', level: 'read', reason: `bench ${i}`, deviceId: 'bench-device-1' });
    const id = created.json.request.id as string;
    const count = () => received.get(id)?.length ?? 0;
    const deadline = Date.now() + 5_000;
    while (count() < clients && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    if (count() !== clients) throw new Error(`round ${i}: ${count()} of ${clients} clients on A got the event from B`);
    await new Promise((r) => setTimeout(r, 30));
  }
  events.close();
  return [...received.values()].flat();
}

export default async function bench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const pg = await startPostgres({ database: 'stint_bench' });
  const idp = await startIdp({ accessTokenTtlSeconds: 3600 });
  const stops: (() => Promise<void>)[] = [];
  try {
    const config = merge(testConfig(idp, pg.adminUrl('stint_bench'), 0), {
      storage: { pool: { max: 10 } },
      policies: { 'staging-self-service': { autoApprove: { when: { riskBelow: 101 } } } },
      server: { heartbeatSeconds: 30 },
    });
    const [alice, bob] = await Promise.all([idp.tokenFor('alice'), idp.tokenFor('bob')]);
    const seconds = opts.quick ? 5 : 15;
    // Measured time per kind in the one/two comparison (windows of 1.25 s quick, 3 s full, after each settles).
    const comparedSeconds = opts.quick ? 10 : 24;
    // Each new instance is warmed up first: V8 keeps compiling hot code on background threads for several seconds,
    // and with 1 s of warm-up that compiling still cost ~1.5 ms of CPU per lifecycle in the measured window.
    const warmMs = opts.quick ? 5_000 : 10_000;
    const a = await startInstance(config);
    stops.push(a.stop);
    await lifecycles([a.url], alice, warmMs, 16); // also fills connections and PostgreSQL's caches
    // Light load first: what one lifecycle takes when the instance is not saturated.
    const light = summary([await measured(pg, [a], [a.url], alice, seconds * 1000, LIGHT_CLIENTS)]);
    const b = await startInstance(config);
    stops.push(b.stop);
    // Both warmed at the measured load: code that only a full queue runs (large batches) is compiled before, not in,
    // the first measured windows.
    await lifecycles([a.url, b.url], alice, 2 * warmMs, SATURATING_CLIENTS);
    // One and two instances in alternating windows, each kind taken over its windows (summary): this VM's speed drifts by
    // ±25 % within minutes, and two measurements made one after the other would compare the VM as much as the code.
    // The order (one two, two one, two one, one two, twice) gives both kinds the same mean position, so a steady
    // drift favours neither. (During the one-instance windows B stays up, idle.) Eight rounds: windows of one kind
    // spread ±15 % within a run, so four of each compared two kinds a few per cent apart too loosely.
    const rounds = 8;
    const windowMs = SETTLE_MS + (comparedSeconds * 1000) / rounds;
    const oneWindows: Measured[] = [];
    const twoWindows: Measured[] = [];
    let changes = 0;
    let commits = 0;
    for (let round = 0; round < rounds; round++) {
      for (const kind of round % 4 === 0 || round % 4 === 3 ? ['one', 'two'] : ['two', 'one']) {
        if (kind === 'two') {
          twoWindows.push(await measured(pg, [a, b], [a.url, b.url], alice, windowMs, SATURATING_CLIENTS));
          report('two', twoWindows.at(-1)!);
          continue;
        }
        const before = await writeBatches(a.url);
        oneWindows.push(await measured(pg, [a], [a.url], alice, windowMs, SATURATING_CLIENTS));
        report('one', oneWindows.at(-1)!);
        const after = await writeBatches(a.url);
        changes += after.sum - before.sum;
        commits += after.count - before.count;
      }
    }
    const one = summary(oneWindows);
    const two = summary(twoWindows);
    // Light load again over PostgreSQL's Unix socket, as a server on the database's host would connect: every query is
    // a syscall each way, and on this VM a TCP loopback write costs far more than a socket write.
    const local = await startInstance(merge(config, { storage: { url: pg.socketUrl('stint_bench') } }));
    await lifecycles([local.url], alice, warmMs, 16);
    const socket = summary([await measured(pg, [local], [local.url], alice, seconds * 1000, LIGHT_CLIENTS).finally(() => local.stop())]);
    const latencies = await crossInstanceLatencies(a.url, b.url, alice, bob, opts.quick ? 200 : 1_000, opts.quick ? 15 : 30);
    return {
      lifecycles_per_s_pg: Math.round(one.rate),
      lifecycles_per_s_pg_2inst: Math.round(two.rate),
      clients: SATURATING_CLIENTS,
      lifecycle_p50_ms: Math.round(one.p50Ms),
      lifecycle_p99_ms: Math.round(one.p99Ms),
      node_cpu_ms_per_lifecycle_2inst: Number(two.nodeCpuMs.toFixed(2)),
      pg_cpu_ms_per_lifecycle_2inst: Number(two.pgCpuMs.toFixed(2)),
      lifecycle_p50_ms_2inst: Math.round(two.p50Ms),
      // Both instances' threads together, and the load generator's: against the one-instance figures below.
      instance_cpu_ms_per_lifecycle_2inst: Number(two.instanceCpuMs.toFixed(2)),
      load_cpu_ms_per_lifecycle_2inst: Number(two.loadCpuMs.toFixed(2)),
      lifecycles_per_s_pg_light: Math.round(light.rate),
      lifecycle_p50_ms_light: Math.round(light.p50Ms),
      lifecycle_p99_ms_light: Math.round(light.p99Ms),
      light_clients: LIGHT_CLIENTS,
      // Where the time goes (2 cores): CPU per lifecycle in Node (load generator + instances) and in PostgreSQL.
      node_cpu_ms_per_lifecycle: Number(one.nodeCpuMs.toFixed(2)),
      pg_cpu_ms_per_lifecycle: Number(one.pgCpuMs.toFixed(2)),
      // The instance's own event loop, busy ms per lifecycle: at 1000 / this the one instance is saturated.
      server_ms_per_lifecycle: Number(one.serverMs.toFixed(2)),
      // CPU, not wall time: the instance's thread and the load generator's (the main thread).
      instance_cpu_ms_per_lifecycle: Number(one.instanceCpuMs.toFixed(2)),
      load_cpu_ms_per_lifecycle: Number(one.loadCpuMs.toFixed(2)),
      lifecycles_per_s_pg_socket: Math.round(socket.rate),
      changes_per_commit: Number((changes / Math.max(1, commits)).toFixed(1)),
      cross_instance_event_p99_ms: percentile(latencies, 99),
      cross_instance_event_p50_ms: percentile(latencies, 50),
      cross_instance_clients: opts.quick ? 200 : 1_000,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    agent.destroy();
    await idp.close();
    await pg.stop();
  }
}
