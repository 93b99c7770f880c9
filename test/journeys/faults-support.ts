// Shared pieces of the fault tests (test/journeys/faults-*.test.ts): a wall clock that can be moved, a network
// between agent and server that can be cut, and probes for what a user (or an attacker with the laptop) could still
// use after access should have ended: a listening port, a keychain item, a database role.
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { startProcess } from '../../dev/process';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import pg from 'pg';
import type { Clock } from '../../shared/domain/clock';
import { systemClock } from '../../shared/domain/clock';
import { editConfigText, type Stack } from '../harness/stack';

/**
 * The system clock with a movable wall time. `jump(ms)` moves wall time only: to the agent that is either the user
 * (or NTP) changing the clock, or — seen right after waking — a sleep of `ms` during which the monotonic clock and
 * its timers stood still.
 */
export class MovableClock implements Clock {
  private shiftMs = 0;
  now(): number { return Date.now() + this.shiftMs; }
  monotonic(): number { return systemClock.monotonic(); }
  setTimer(fn: () => void, ms: number) { return systemClock.setTimer(fn, ms); }
  jump(ms: number): void { this.shiftMs += ms; }
}

/** The agent's network to the server, which a test can cut (in-flight requests and streams die, new ones fail). */
export class CuttableNetwork {
  private cut_ = false;
  private only?: RegExp;
  private readonly inflight = new Set<AbortController>();
  /** Every call, with the Last-Event-ID it carried (for the event stream's resume). */
  readonly calls: Array<{ url: string; lastEventId: string | null; at: number }> = [];

  readonly fetch: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    this.calls.push({ url, lastEventId: new Headers(init?.headers).get('last-event-id'), at: Date.now() });
    if (this.cut_ || (this.only && !this.only.test(url))) throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ENETUNREACH (test: network cut)'), { code: 'ENETUNREACH' }) });
    const controller = new AbortController();
    this.inflight.add(controller);
    const signal = init?.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    return fetch(input, { ...init, signal });
  };

  get isCut(): boolean { return this.cut_; }

  cut(): void {
    this.cut_ = true;
    for (const c of this.inflight) c.abort(new TypeError('fetch failed (test: network cut)'));
    this.inflight.clear();
  }

  /** Bring the network back; with `only`, just for URLs matching it (the rest stays cut). */
  restore(only?: RegExp): void {
    this.cut_ = false;
    this.only = only;
  }
}

export async function query(uri: string, sql: string): Promise<{ client: pg.Client; rows: any[] }> {
  const client = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined); // a killed session also errors on the socket; the query's rejection says it
  await client.connect();
  try {
    return { client, rows: (await client.query(sql)).rows };
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}

/** One query on a fresh connection, then close it. */
export async function queryOnce(uri: string, sql: string): Promise<any[]> {
  const { client, rows } = await query(uri, sql);
  await client.end().catch(() => undefined);
  return rows;
}

/** Resolves true when nothing listens on 127.0.0.1:port any more. */
export function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/**
 * Keychain accounts (service "stint") that mention this grant — listed through the agent's own store, whose calls
 * run one at a time in this process: a raw keytar listing beside the agent's deletes crashed the test worker
 * (libsecret's "secret_value_get_text: assertion 'value' failed", then keytar reads a NULL secret).
 */
export async function keychainItemsFor(grantId: string): Promise<string[]> {
  return (await new KeytarSecretStore('stint').list()).filter((a) => a.includes(grantId));
}

export async function roleExists(stack: Stack, role: string): Promise<boolean> {
  return (await stack.pg.query('select 1 from pg_roles where rolname = $1', [role], 'postgres')).length > 0;
}

/** A server call as a user, outside any agent (what an approver's or admin's client does). */
export async function api<T = any>(stack: Stack, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(new URL(path, stack.serverUrl), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export { AuthenticatorApp } from '../harness/authenticator';

/** What an agent held when it was killed mid-grant (faults-crashed-agent.ts prints it). */
export interface CrashedGrant { grantId: string; requestId: string; port: number; role: string; uri: string; /** The kind's client command (e.g. an SSH host's `ssh -F …`). */ command?: string }

/**
 * An agent in a process of its own signs in as `user` on `device`, gets a grant of `resourceId` at `level` (read) with a tunnel
 * (giving `code`, a one-time code, where the policy asks the request for a step-up), and is killed with SIGKILL: no
 * dispose, no wipe, the server not told — after `whileAlive`, when given, has used what it held. Resolves once its
 * tunnel's port refuses: the grant goes on on the server.
 */
export async function crashMidGrant(stack: Stack, o: {
  device: string; user?: string; resourceId?: string; level?: string; code?: string; durationSeconds?: number;
  /** Where its kind's client files go (they stay on disk after the crash, as on a laptop). */
  dataDir?: string;
  whileAlive?: (held: CrashedGrant) => Promise<void>;
}): Promise<CrashedGrant> {
  const crashed = startProcess(process.execPath, ['--import', 'tsx', resolve('test/journeys/faults-crashed-agent.ts')], {
    env: {
      ...process.env,
      FAULT_SERVER_URL: stack.serverUrl, FAULT_ISSUER: stack.idp.issuer, FAULT_AUDIENCE: stack.idp.audience,
      FAULT_USER: o.user ?? 'alice', FAULT_DURATION_SECONDS: String(o.durationSeconds ?? 600), FAULT_DEVICE_ID: o.device,
      ...(o.resourceId ? { FAULT_RESOURCE: o.resourceId } : {}), ...(o.level ? { FAULT_LEVEL: o.level } : {}),
      ...(o.dataDir ? { FAULT_DATA_DIR: o.dataDir } : {}), ...(o.code ? { FAULT_TOTP_CODE: o.code } : {}),
    },
  });
  let held: CrashedGrant & { error?: string };
  try {
    await until(() => /^\{.*\}$/m.test(crashed.output()) || crashed.child.exitCode !== null, 30_000, 50).catch(() => undefined);
    const line = crashed.output().split('\n').find((l) => l.startsWith('{'));
    held = JSON.parse(line ?? '{"error":"no output"}') as CrashedGrant & { error?: string };
    if (held.error === undefined) await o.whileAlive?.(held);
  } finally {
    await crashed.stop('SIGKILL');
  }
  if (held.error !== undefined) throw new Error(`the agent to crash got no grant: ${crashed.output()}`);
  if (!(await portRefuses(held.port))) throw new Error(`the crashed agent's tunnel port ${held.port} still answers`);
  return held;
}

/** Wait until `predicate` holds, checking every `everyMs`; returns when it first held (ms since the epoch). */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return Date.now();
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Make staging auto-approval independent of risk signals (bursts, new devices) for tests that request a lot. */
/** 200 clients share two users' budgets in a burst: the rate limits would answer most of them 429 (by design). */
export function noRateLimits(yaml: string): string {
  return editConfigText(yaml, ['rateLimits: { read: 600, write: 120, proof: 30, public: 300 }', 'rateLimits: { read: 0, write: 0, proof: 0, public: 0 }']);
}

export function alwaysAutoApprove(yaml: string): string {
  return editConfigText(yaml,
    ['autoApprove: { when: { riskBelow: 30 } }', 'autoApprove: { when: { riskBelow: 101 } }'],
    ['stepUp: { request: on-risk, methods: [webauthn, totp] }', 'stepUp: { request: never, methods: [webauthn, totp] }']);
}
