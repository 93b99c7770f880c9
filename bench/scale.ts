// How the grant server's costs grow with its data (issue #22 item 5). A SQLite file is seeded directly (see
// dev/scale-seed.ts: requests, ended and active grants, users, an audit trail that is a valid hash chain), then
// the real server runs on it:
//   audit_page_p99_ms        — GET /v1/admin/audit as carol (admin), the newest page of 50 (keyset, newest first),
//                              p99 of sequential calls.
//   audit_deep_page_p99_ms   — the same from the middle of the chain (`before=<head/2>`): a cursor deep in the table.
//   audit_user_page_p99_ms   — GET /v1/audit?order=desc as alice (non-admin: the server filters to her own rows, actor
//                              or subject): her newest 50, what History opens with.
//   audit_user_filter_p99_ms — carol, the console's user filter (`user=alice`) from the middle of the chain.
//   audit_user_first_p99_ms  — alice's oldest page (`after=0`, chain order), as older clients ask.
//   audit_grant_filter_p99_ms — carol, `grantId=` one grant's trail, newest first.
//   audit_time_range_p99_ms  — carol, one hour 27 days back (`from`/`to`): the range found by seq, not by walking.
//   (indexes (column, seq) on actor, subject, grant_id, request_id, resource_id, action: migration 0013)
//   me_p99_ms, grants_p99_ms — GET /v1/me and GET /v1/grants (alice) p99, also on an empty database (`_empty`).
//   audit_verify_events_per_s — verifyAudit (what `stint-server audit verify` runs) over the whole chain, in-process.
//   startup_ms               — in-process restart on the seeded file: buildServer (migrations check, policy versions,
//                              the sweep that arms a timer for every active grant) + listen, until /readyz answers 200.
//   startup_spawn_ms         — `stint-server serve` as a child process (node + tsx), spawn → /readyz 200.
//   server_rss_mb            — VmRSS of that child process after the latency runs.
// --quick: the 10× smaller data set only (100k audit rows, 10k ended, 500 active grants, 200 users). Full: that and
// the full set (1M, 100k, 5k, 2,000); unsuffixed keys are the largest set measured, `_small` the 10× smaller one and
// `_growth` full ÷ small. Then the agent, in a process of its own (support/scale-agent.ts, bundled like idle.ts)
// against dev/agent-backend.ts (real PostgreSQL, sshd bastion, grant server) with 10 active grants and 10 open
// tunnels, idle: agent_rss_mb (its VmRSS at the end; agent_rss_max_mb the highest sampled), agent_cpu_pct.
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { performance } from 'node:perf_hooks';
import { startIdp } from '../dev/idp';
import { spawnGrantServer, startGrantServer } from '../dev/grant-server';
import { freePort } from '../dev/ports';
import { serviceDir } from '../dev/run-dir';
import { openStore } from '../server/storage/db';
import { verifyAudit } from '../server/lifecycle/audit';
import { createSystemClock, type Clock } from '../shared/domain/clock';
import { agent, noop, request } from './support/http';
import { startAgentBackend } from './support/agent-backend';
import { KeytarSecretStore } from '../agent/core/secrets/keytar-store';
import { explain, seedScale, timeQuery, type ScaleSize } from '../dev/scale-seed';

const SMALL: ScaleSize = { audit: 100_000, ended: 10_000, active: 500, users: 200 };
const FULL: ScaleSize = { audit: 1_000_000, ended: 100_000, active: 5_000, users: 2_000 };

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** p99 (and p50) of sequential calls after a warm-up; every answer must be 200. */
async function latency(base: URL, path: string, token: string, calls: number): Promise<{ p99: number; p50: number; rows?: number }> {
  let rows: number | undefined;
  for (let i = 0; i < 100; i++) await request(base, 'GET', path, token);
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    const r = await request(base, 'GET', path, token);
    times.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`GET ${path} → ${r.status} ${JSON.stringify(r.json)}`);
    rows = Array.isArray(r.json?.entries) ? r.json.entries.length : Array.isArray(r.json?.grants) ? r.json.grants.length : rows;
  }
  return { p99: percentile(times, 99), p50: percentile(times, 50), rows };
}

async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${url}/readyz did not answer 200`);
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : NaN;
}

type Idp = Awaited<ReturnType<typeof startIdp>>;

async function measure(idp: Idp, tokens: { carol: string; alice: string }, size: ScaleSize | undefined, label: string, calls: number): Promise<Record<string, number>> {
  const dataDir = serviceDir(`bench-scale-${label}`);
  const url = `sqlite:${join(dataDir, 'stint.db')}`;
  const out: Record<string, number> = {};
  const log = (msg: string) => process.stderr.write(`[scale ${label}] ${msg}\n`);
  let maxSeq = 0;
  if (size) {
    const seeded = await seedScale(url, size);
    maxSeq = seeded.maxSeq;
    out.seed_s = seeded.ms / 1000;
    log(`seeded ${JSON.stringify(size)} in ${(seeded.ms / 1000).toFixed(1)} s`);
  }
  const overrides = { storage: { url }, server: { heartbeatSeconds: 30 } };

  // In-process start twice: the first writes the policy versions (a one-off), the second is the restart measured.
  const first = await startGrantServer({ idp, dataDir, credentials: noop, overrides });
  await first.close();
  // The restart's clock counts the timers armed for the seeded grants (their ends are an hour or more away).
  const system = createSystemClock({ unref: true });
  let armed = 0;
  const clock: Clock = { ...system, setTimer: (fn, ms) => { if (ms >= 3000_000) armed += 1; return system.setTimer(fn, ms); } };
  const t0 = performance.now();
  const again = await startGrantServer({ idp, dataDir, credentials: noop, overrides, clock });
  await waitReady(again.url);
  out.startup_ms = performance.now() - t0;
  out.startup_timers_armed = armed;
  await again.close();
  if (size && armed < size.active) throw new Error(`restart armed ${armed} grant timers, expected ${size.active}`);
  log(`startup ${out.startup_ms.toFixed(0)} ms, ${armed} grant timers armed`);

  if (size) {
    const store = openStore(url);
    try {
      const t = performance.now();
      const verified = await verifyAudit(store.db);
      const s = (performance.now() - t) / 1000;
      if (!verified.ok) throw new Error(`audit verify failed at ${verified.seq}: ${verified.reason}`);
      out.audit_verify_events_per_s = verified.count / s;
      out.audit_verify_s = s;
      log(`verify ${verified.count} rows in ${s.toFixed(1)} s`);
    } finally {
      await store.close();
    }
  }

  const port = await freePort();
  const t1 = performance.now();
  const spawned = await spawnGrantServer({ idp, dataDir, port, overrides: { ...overrides, server: { ...overrides.server, url: `http://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port } } } });
  try {
    await waitReady(spawned.url);
    out.startup_spawn_ms = performance.now() - t1;
    const base = new URL(spawned.url);
    // The head as the server sees it (start-up appended policy.version rows after the seeded ones).
    const tail = await request(base, 'GET', `/v1/audit?after=${maxSeq}&limit=1000`, tokens.carol);
    const head = maxSeq + (tail.json?.entries?.length ?? 0);
    const page = await latency(base, '/v1/admin/audit?limit=50', tokens.carol, calls);
    out.audit_page_p99_ms = page.p99;
    out.audit_page_p50_ms = page.p50;
    const deep = await latency(base, `/v1/admin/audit?limit=50&before=${Math.max(1, Math.floor(head / 2))}`, tokens.carol, calls);
    out.audit_deep_page_p99_ms = deep.p99;
    const userPage = await latency(base, '/v1/audit?order=desc&limit=50', tokens.alice, calls);
    out.audit_user_page_p99_ms = userPage.p99;
    out.audit_user_page_p50_ms = userPage.p50;
    out.audit_user_page_rows = userPage.rows ?? 0;
    const userFilter = await latency(base, `/v1/admin/audit?user=alice&limit=50&before=${Math.max(1, Math.floor(head / 2))}`, tokens.carol, calls);
    out.audit_user_filter_p99_ms = userFilter.p99;
    out.audit_user_filter_rows = userFilter.rows ?? 0;
    const userFirst = await latency(base, '/v1/audit?limit=50', tokens.alice, calls);
    out.audit_user_first_p99_ms = userFirst.p99;
    out.audit_user_first_p50_ms = userFirst.p50;
    const grantFilter = await latency(base, `/v1/admin/audit?grantId=grt_s${Math.floor((size?.ended ?? 0) / 2)}&limit=50`, tokens.carol, calls);
    out.audit_grant_filter_p99_ms = grantFilter.p99;
    out.audit_grant_filter_p50_ms = grantFilter.p50;
    // The seeded rows span the last 30 days (dev/scale-seed.ts).
    const hourAt = Date.now() - 27 * 86400_000;
    const timeRange = await latency(base, `/v1/admin/audit?from=${new Date(hourAt).toISOString()}&to=${new Date(hourAt + 3600_000).toISOString()}&limit=50`, tokens.carol, calls);
    out.audit_time_range_p99_ms = timeRange.p99;
    out.audit_time_range_p50_ms = timeRange.p50;
    out.audit_time_range_rows = timeRange.rows ?? 0;
    const me = await latency(base, '/v1/me', tokens.alice, calls);
    out.me_p99_ms = me.p99;
    out.me_p50_ms = me.p50;
    const grants = await latency(base, '/v1/grants', tokens.alice, calls);
    out.grants_p99_ms = grants.p99;
    out.grants_p50_ms = grants.p50;
    out.grants_rows = grants.rows ?? 0;
    out.server_rss_mb = rssMb(spawned.proc.child.pid!);
    log(`latencies ${JSON.stringify(out)}`);
  } finally {
    await spawned.stop();
  }

  if (size) {
    // The statements behind the filtered pages, straight on the file: plan and time without HTTP.
    // The user filter as the server runs it (server/lifecycle/audit-search.ts): two index walks merged.
    const userSql = `select * from "audit" where "seq" in (select "a"."seq" from (select "seq" from "audit" where "actor" = ? order by "seq" desc limit ?) as "a"
      union select "s"."seq" from (select "seq" from "audit" where "subject" = ? order by "seq" desc limit ?) as "s") order by "seq" desc limit ?`;
    const grantSql = 'select * from "audit" where "grant_id" = ? order by "seq" desc limit ?';
    log(`plan alice page: ${explain(url, userSql, ['alice', 50, 'alice', 50, 50])}`);
    log(`plan grantId filter: ${explain(url, grantSql, ['grt_s1', 50])}`);
    out.sql_user_first_ms = timeQuery(url, userSql, ['alice', 50, 'alice', 50, 50]);
    out.sql_grant_filter_ms = timeQuery(url, grantSql, [`grt_s${Math.floor(size.ended / 2)}`, 50], 5);
  }
  return out;
}

async function measureAgent(seconds: number, grants: number): Promise<Record<string, number>> {
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { backend, server } = await startAgentBackend(stops);
    const service = `stint-bench-${randomUUID()}`;
    await backend.session('alice', { secrets: new KeytarSecretStore(service) }).signIn();
    // Plain node on a bundle, as the agent ships (a TypeScript loader would add its own memory and CPU).
    const bundle = join(fileURLToPath(new URL('../node_modules/.cache/stint-bench/', import.meta.url)), 'scale-agent.mjs');
    await build({ entryPoints: [fileURLToPath(new URL('./support/scale-agent.ts', import.meta.url))], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile: bundle, logLevel: 'error' });
    const child = spawn(process.execPath, [bundle,
      JSON.stringify({ serverUrl: server.url, port: await freePort(), seconds, grants, service, issuer: backend.idp.issuer, clientId: backend.idp.clientId, audience: backend.idp.audience })], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env } });
    stops.push(async () => void child.kill());
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((r) => child.once('close', r));
    const { open, cpuMs, wallMs, rssMb, rssMaxMb } = JSON.parse(out.trim().split('\n').pop()!) as { open: number; cpuMs: number; wallMs: number; rssMb: number; rssMaxMb: number };
    if (open !== grants) throw new Error(`expected ${grants} open tunnels, found ${open}`);
    return { agent_rss_mb: rssMb, agent_rss_max_mb: rssMaxMb, agent_cpu_pct: (cpuMs / wallMs) * 100, agent_tunnels: open, agent_seconds: seconds };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}

export default async function bench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const idp = await startIdp({ accessTokenTtlSeconds: 3600 });
  try {
    const [carol, alice] = await Promise.all([idp.tokenFor('carol'), idp.tokenFor('alice')]);
    const tokens = { carol, alice };
    // Calls per figure: a p99 of 500 sub-millisecond calls is its 5th slowest, and one slow call moved the 1M page's
    // p99 from 2.1 to 8.7 ms between two idle runs (0.58× and 2.7× the empty database's); 2,000 calls take ~1 s a figure.
    const calls = opts.quick ? 300 : 2_000;
    const empty = await measure(idp, tokens, undefined, 'empty', calls);
    const small = await measure(idp, tokens, SMALL, 'small', calls);
    const full = opts.quick ? undefined : await measure(idp, tokens, FULL, 'full', calls);
    const top = full ?? small;
    const size = opts.quick ? SMALL : FULL;
    const result: Record<string, number | string> = {
      audit_rows: size.audit, ended_grants: size.ended, active_grants: size.active, users: size.users,
      ...top,
      audit_page_vs_empty: top.audit_page_p99_ms! / empty.audit_page_p99_ms!,
      me_p99_ms_empty: empty.me_p99_ms!, grants_p99_ms_empty: empty.grants_p99_ms!, audit_page_p99_ms_empty: empty.audit_page_p99_ms!,
      me_p50_ms_empty: empty.me_p50_ms!, grants_p50_ms_empty: empty.grants_p50_ms!, audit_page_p50_ms_empty: empty.audit_page_p50_ms!,
      startup_ms_empty: empty.startup_ms!, server_rss_mb_empty: empty.server_rss_mb!,
    };
    Object.assign(result, await measureAgent(opts.quick ? 10 : 30, 10));
    if (full) {
      for (const [k, v] of Object.entries(small)) result[`${k}_small`] = v;
      for (const k of ['audit_page_p99_ms', 'audit_deep_page_p99_ms', 'audit_time_range_p99_ms', 'audit_user_filter_p99_ms', 'audit_user_page_p99_ms', 'audit_user_first_p99_ms', 'audit_grant_filter_p99_ms', 'sql_user_first_ms', 'sql_grant_filter_ms', 'audit_page_p50_ms', 'audit_user_page_p50_ms', 'audit_verify_events_per_s', 'startup_ms', 'server_rss_mb', 'me_p99_ms', 'grants_p99_ms', 'me_p50_ms', 'grants_p50_ms']) {
        result[`${k}_growth`] = full[k]! / small[k]!;
      }
    }
    return result;
  } finally {
    agent.destroy();
    await idp.close();
  }
}
