// Faults of the agent's time in a real process (issue #21): the agent runs in a process of its own under libfaketime
// (dev/faketime.ts) with a live grant, and its clock is moved from outside — so what moves is the clock Node, undici,
// ssh2, the keychain client and the agent's timers all read, not an injected Clock (faults-clock.test.ts).
// - The wall clock (CLOCK_REALTIME only, what a user or NTP does): the process lives on; back, access ends at the
//   real deadline; forward past the deadline, it ends at once and the server is told.
// - Both clocks back (libfaketime's default; no kernel moves CLOCK_MONOTONIC back): Node aborts at its next timer
//   (env.cc `now >= timer_base()`, in undici's timers when a server event or a packet wakes it). No JS runs after a
//   CHECK, so the agent cannot survive it; it is a crash, and what it leaves — the keychain record, the grant active
//   on the server — must go as after kill -9: the next start wipes the record and offers the grant, End ends it.
import { resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { startProcess, type Started } from '../../dev/process';
import { fakeTime, type FakeTime } from '../../dev/faketime';
import { keychainItemsFor, portRefuses, query, roleExists, until } from './faults-support';

let stack: Stack;
let agentProcess: Started | undefined;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterEach(async () => { await agentProcess?.stop('SIGKILL'); });
afterAll(async () => { await stack?.stop(); });

interface Held { grantId: string; port: number; role: string; uri: string; error?: string }

/** An agent in its own process, its clock under `time`, holding a staging grant of `seconds` with a live session. */
async function agentWithGrant(time: FakeTime, device: string, seconds: number) {
  const proc = agentProcess = startProcess(process.execPath, ['--import', 'tsx', resolve('test/journeys/faults-crashed-agent.ts')], {
    env: {
      ...process.env, ...time.env,
      FAULT_SERVER_URL: stack.serverUrl, FAULT_ISSUER: stack.idp.issuer, FAULT_AUDIENCE: stack.idp.audience,
      FAULT_USER: 'alice', FAULT_DURATION_SECONDS: String(seconds), FAULT_DEVICE_ID: device,
    },
  });
  time.watch(proc.child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    proc.child.once('exit', (code, signal) => done({ code, signal }));
  });
  await until(() => /^\{.*\}$/m.test(proc.output()) || proc.child.exitCode !== null, 30_000, 50).catch(() => undefined);
  const line = proc.output().split('\n').find((l) => l.startsWith('{'));
  const held = JSON.parse(line ?? '{"error":"no output"}') as Held;
  expect(held.error, `agent output: ${proc.output()}`).toBeUndefined();
  const grantEndsAt = Date.now() + seconds * 1_000; // an upper bound: the grant started before its line came out
  const live = await query(held.uri, 'select 1');
  const running = live.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);
  expect(await keychainItemsFor(held.grantId)).toEqual([`grant:${held.grantId}`]);
  return { ...held, proc, exited, grantEndsAt, live, running };
}

describe('faults: the clock of the agent process moved from outside (libfaketime)', () => {
  it('a clock 90 minutes ahead from the start: it signs in (tokens are checked against the sign-in service\'s time) and access ends at the real deadline', async () => {
    const time = fakeTime('journey-ahead-from-start');
    time.jump(90 * 60_000);
    const g = await agentWithGrant(time, 'device-clock-ahead', 8);

    await until(() => portRefuses(g.port), g.grantEndsAt - Date.now() + 3_000, 50);
    expect(Date.now()).toBeGreaterThan(g.grantEndsAt - 3_000); // not early for the clock being ahead
    await expect(g.running).resolves.toMatch(/terminat|connection|closed|ECONNRESET/i);
    await g.live.client.end().catch(() => undefined);
    await until(async () => (await keychainItemsFor(g.grantId)).length === 0, 5_000, 100);
  }, 60_000);

  it('wall clock back 10 minutes: the process lives on and access ends at the real deadline, nothing left', async () => {
    const time = fakeTime('journey-wall-back');
    const g = await agentWithGrant(time, 'device-clock-back', 8);
    time.jump(-10 * 60_000);

    await until(() => portRefuses(g.port), g.grantEndsAt - Date.now() + 3_000, 50);
    const endedAt = Date.now();
    expect(endedAt).toBeLessThan(g.grantEndsAt + 1_500); // not later for the clock being behind
    expect(endedAt).toBeGreaterThan(g.grantEndsAt - 3_000); // nor early
    await expect(g.running).resolves.toMatch(/terminat|connection|closed|ECONNRESET/i);
    await g.live.client.end().catch(() => undefined);
    await expect.poll(() => keychainItemsFor(g.grantId), { timeout: 2_000 }).toEqual([]);
    await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
    expect(g.proc.child.exitCode).toBeNull(); // alive throughout
  }, 60_000);

  it('wall clock forward past the deadline: access ends at once, and the server drops the role', async () => {
    const time = fakeTime('journey-wall-forward');
    const g = await agentWithGrant(time, 'device-clock-forward', 60);
    const jumpedAt = Date.now();
    time.jump(10 * 60_000);

    // The process notices within its detector's 250 ms (the desktop shell looks every 30 s).
    await until(() => portRefuses(g.port), 3_000, 50);
    expect(Date.now() - jumpedAt).toBeLessThan(2_000);
    await expect(g.running).resolves.toMatch(/terminat|connection|closed|ECONNRESET/i);
    await g.live.client.end().catch(() => undefined);
    await expect.poll(() => keychainItemsFor(g.grantId), { timeout: 2_000 }).toEqual([]);
    await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
    expect(g.proc.child.exitCode).toBeNull();
  }, 60_000);

  it('both clocks back 10 minutes: Node aborts, and the next start wipes the keychain record and End ends the grant', async () => {
    const time = fakeTime('journey-both-back', { fakeMonotonic: true });
    const device = 'device-clock-both-back';
    const g = await agentWithGrant(time, device, 120);
    time.jump(-10 * 60_000);

    // Its timers now wait for a monotonic instant 10 minutes away; what wakes it is I/O — here the heartbeat of the
    // server's event stream (every 15 s), which undici answers by re-arming its timer: the abort.
    const exit = await Promise.race([g.exited, new Promise((r) => setTimeout(() => r('still running'), 25_000))]);
    expect(exit, g.proc.output().slice(-3_000)).toEqual({ code: null, signal: 'SIGABRT' });
    expect(g.proc.output()).toMatch(/Assertion failed: \(now\) >= \(timer_base\(\)\)/);
    expect(await portRefuses(g.port)).toBe(true);
    await expect(g.running).resolves.not.toBe('finished');
    await g.live.client.end().catch(() => undefined);
    // What an abort leaves, as kill -9 does: the keychain record, and the grant active on the server.
    expect(await keychainItemsFor(g.grantId)).toEqual([`grant:${g.grantId}`]);
    expect(await roleExists(stack, g.role)).toBe(true);

    // Stint starts again on the same device (a normal clock): the record is wiped, the grant offered, End ends it.
    const next = stack.agent('alice', { deviceId: device });
    await next.agent.start();
    expect(await keychainItemsFor(g.grantId)).toEqual([]);
    expect(next.agent.state().grants.find((x) => x.grant.id === g.grantId)).toMatchObject({ leftFromBefore: true, grant: { state: 'active' } });
    await next.agent.api.release({ grantId: g.grantId });
    await until(async () => !(await roleExists(stack, g.role)), 5_000, 50);
    await next.agent.dispose();
  }, 90_000);
});
