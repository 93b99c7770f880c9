// The requester's side: what I may request, asking (with a one-time code when policy asks me to step up), waiting
// for approval, and holding the tunnel. A tunnel lives as long as the `stint` process that opened it (SSH keys are
// memory-only by design), so `request` and `connect` stay in the foreground until the access ends or Ctrl+C.
import { spawn } from 'node:child_process';
import type { CliAgent } from './remote-agent';
import type { AgentState, ConnectResult, LocalGrant } from '../../shared/contract/agent';
import type { AccessRequest } from '../../shared/contract/http';
import { formatCountdown } from '../../shared/domain/countdown';
import { kindWords } from '../../shared/domain/kinds';
import { approverText, needsApproval, resourceHints } from '../../shared/domain/policy-words';
import type { CliContext } from './context';
import { CliError } from './explain';
import { proveWithCode, withStepUp } from './stepup';

/** Live access as the agent published it (its phase: the CLI decides nothing about time). */
function liveGrants(state: AgentState): LocalGrant[] {
  return state.grants.filter((g) => g.phase !== 'ended');
}

function findGrant(state: AgentState, ref: string): LocalGrant {
  const live = liveGrants(state);
  const match = live.find((g) => g.grant.id === ref) ?? live.find((g) => g.grant.resourceId === ref);
  if (!match) throw new CliError(`No active access matches "${ref}".`, 1, 'See `stint grants`.');
  return match;
}

function timeLeft(g: LocalGrant, now = Date.now()): string {
  const text = formatCountdown(Math.max(0, Date.parse(g.localEndsAt) - now));
  return g.phase === 'ending_soon' ? `${text} left, ending soon` : `${text} left`;
}

/** Resolve when `until` holds for the agent's state (checked on every state event), or reject on SIGINT. */
export function waitForState(agent: CliAgent, until: (state: AgentState) => boolean): Promise<AgentState> {
  return new Promise((resolve, reject) => {
    const stop = agent.subscribe((event) => {
      if (event.type === 'state' && until(event.state)) {
        stop();
        process.off('SIGINT', onInt);
        resolve(event.state);
      }
    });
    const onInt = () => { stop(); reject(new CliError('Stopped.', 130)); };
    process.once('SIGINT', onInt);
  });
}

/** Run the grant's psql command as the user would paste it (it names the grant's passfile: no password needed). */
function runPsql(command: string): { exited: Promise<unknown>; stop: () => void } {
  const child = spawn('/bin/sh', ['-c', command], { stdio: 'inherit' });
  return { exited: new Promise((resolve) => child.once('exit', resolve)), stop: () => child.kill('SIGTERM') };
}

async function hold(ctx: CliContext, connection: ConnectResult, psql: boolean): Promise<void> {
  const { agent, io } = ctx;
  const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
  const local = agent.state().grants.find((g) => g.grant.id === connection.grantId);
  const command = local?.tunnel?.command;
  // The JSON names the command after its client: `psql`, `mariadb`, …
  if (ctx.json) io.out(JSON.stringify({ ...connection, uri, ...(command ? { [kindWords(local?.grant.kind).client]: command } : {}) }));
  else {
    if (connection.message) io.err(connection.message);
    io.out(`Connected: ${uri.replace(/:[^:@/]+@/, ':••••@')}`);
    if (command) io.out(`Connect with (no password to type):\n  ${command}`);
    io.out(ctx.remote
      ? 'The tunnel is held by the running Stint agent; it stays open until the access ends or `stint release`.'
      : 'The tunnel stays open while this command runs. Ctrl+C ends it (the access itself runs on until its deadline or `stint release`).');
  }
  if (ctx.remote) {
    // The agent that holds the tunnel goes on without us: nothing to wait for here but psql.
    if (psql && command) await runPsql(command).exited;
    return;
  }
  const ended = waitForState(agent, (state) => !liveGrants(state).some((g) => g.grant.id === connection.grantId));
  if (psql && command) {
    const child = runPsql(command);
    await Promise.race([child.exited, ended.then(() => child.stop())]);
    return;
  }
  // No client file could be written: psql can still take the password from its environment (PostgreSQL only).
  if (psql && (local?.grant.kind ?? 'postgres') === 'postgres') {
    const password = new URL(uri).password;
    const child = spawn('psql', ['-h', connection.host, '-p', String(connection.port), '-U', connection.user, connection.database], {
      stdio: 'inherit',
      // The password goes through the environment of the child only, never on a command line.
      env: { ...process.env, PGPASSWORD: password ? decodeURIComponent(password) : '' },
    });
    await Promise.race([new Promise((r) => child.once('exit', r)), ended.then(() => child.kill('SIGTERM'))]);
    return;
  }
  await ended.catch((error) => { if (!(error instanceof CliError && error.exitCode === 130)) throw error; });
  if (!ctx.json) io.out('Access ended: tunnel closed, credentials wiped.');
}

export async function listResources(ctx: CliContext): Promise<number> {
  const state = await ctx.agent.api.refresh({});
  if (ctx.json) ctx.io.out(JSON.stringify(state.resources));
  else if (!state.resources.length) ctx.io.out('There is nothing you may request.');
  else for (const r of state.resources) {
    const p = r.policy;
    // The tray's and the app's words for the same policy (shared/domain/policy-words.ts).
    const from = needsApproval(p) ? ` (from ${approverText(p.approvals)})` : '';
    ctx.io.out(`${r.id.padEnd(24)} ${r.environment.padEnd(12)} ${r.levels.join('/').padEnd(12)} ${resourceHints(p).join(', ')}${from}`);
  }
  return 0;
}

export async function listGrants(ctx: CliContext): Promise<number> {
  const state = await ctx.agent.api.refresh({});
  const live = liveGrants(state);
  if (ctx.json) ctx.io.out(JSON.stringify(live));
  else if (!live.length) ctx.io.out('No active access.');
  else {
    for (const g of live) ctx.io.out(`${g.grant.resourceId} · ${g.grant.level} · ${timeLeft(g)}  (${g.grant.id})${g.leftFromBefore ? ' · left from before' : ''}`);
    const left = live.filter((g) => g.leftFromBefore);
    if (left.length) {
      ctx.io.out(`Stint stopped while ${left.length === 1 ? 'this access was' : 'these were'} active (left from before): \`stint resume <grant>\` takes it back with new keys (same end), \`stint release <grant>\` ends it.`);
    }
  }
  return 0;
}

export interface RequestOptions {
  level?: string;
  reason?: string;
  ticket?: string;
  durationSeconds?: number;
  code?: string;
  noWait: boolean;
  /** Wait for the decision only, print the request and exit (0 when approved): `stint connect` activates it later. */
  wait: boolean;
  psql: boolean;
}

/** `request --wait` ended without an approval: denied, expired or cancelled (documented in `stint request --help`). */
export const EXIT_NOT_APPROVED = 3;

export async function requestAccess(ctx: CliContext, resourceId: string, o: RequestOptions): Promise<number> {
  const { agent, io } = ctx;
  // What the start loaded; when it could not load (the server was away a moment), ask again so its error shows.
  const resource = agent.state().resources.find((r) => r.id === resourceId) ?? (await agent.api.refresh({})).resources.find((r) => r.id === resourceId);
  if (!resource) throw new CliError(`You cannot request "${resourceId}".`, 1, 'See `stint resources`.');
  const created = await agent.api.createRequest({
    resourceId, level: o.level ?? resource.levels[0]!, reason: o.reason ?? '',
    ...(o.durationSeconds ? { durationSeconds: o.durationSeconds } : {}), ...(o.ticket ? { ticket: o.ticket } : {}), connect: !o.wait,
  });
  if (created.connection) {
    await hold(ctx, created.connection, o.psql);
    return 0;
  }
  let request: AccessRequest = created.request;
  if (request.state === 'pending_stepup') {
    ({ request } = await proveWithCode(agent, { kind: 'request', requestId: request.id }, (proof) => agent.api.submitStepUp({ requestId: request.id, proof }), {
      io, profile: ctx.profile, doing: 'This request', ...(o.code ? { code: o.code } : {}),
    }));
  }
  const waiting = (r: AccessRequest) => r.state === 'pending_approval' || r.state === 'pending_stepup';
  if (o.wait) return await awaitDecision(ctx, request, waiting);
  if (o.noWait || !(waiting(request) || request.state === 'approved')) {
    ctx.print(`Request ${request.id}: ${request.state.replace('_', ' ')}.`, { request });
    return request.state === 'denied' ? 1 : 0;
  }
  if (!ctx.json && request.state === 'pending_approval') {
    io.out(`Waiting for approval (${request.approvalsNeeded.map((a) => `${a.have}/${a.count} ${a.group}`).join(', ')}). Ctrl+C stops waiting; the request stays open.`);
  }
  const id = request.id;
  // An approved request with `connect` is activated by the agent, whose state shows it approved only once that is
  // done (the tunnel open, or the activation failed).
  const decided = await waitForState(agent, (s) => {
    const r = s.requests.find((x) => x.id === id);
    return !r || !waiting(r) || s.grants.some((g) => g.grant.requestId === id && g.tunnel?.status === 'open');
  });
  const grant = decided.grants.find((g) => g.grant.requestId === id);
  if (!grant) {
    const r = decided.requests.find((x) => x.id === id);
    if (r?.state === 'approved') throw new CliError(`Request ${id} was approved, but the connection could not be opened.`, 1, 'See `stint grants`, or try again from the Stint app.');
    throw new CliError(`Request ${id} ${r?.state.replace('_', ' ') ?? 'ended'}${r?.decisionReason ? `: ${r.decisionReason}` : ''}.`);
  }
  // Approved, but the server could not make the account (the database was down): the grant failed, nothing to hold.
  if (grant.grant.state === 'failed') {
    throw new CliError('The server could not set up your database access.', 1, `${grant.grant.endReason ? `It said: ${grant.grant.endReason}. ` : ''}Try again in a moment; if it keeps failing, tell your Stint administrator.`);
  }
  await hold(ctx, await agent.api.connect({ grantId: grant.grant.id }), o.psql);
  return 0;
}

/** Wait until the request is decided (or ends), print it, and say by the exit code whether it was approved. */
async function awaitDecision(ctx: CliContext, request: AccessRequest, waiting: (r: AccessRequest) => boolean): Promise<number> {
  let decided = request;
  if (waiting(request)) {
    if (!ctx.json) ctx.io.err(`Request ${request.id}: waiting for approval (${request.approvalsNeeded.map((a) => `${a.have}/${a.count} ${a.group}`).join(', ')}).`);
    const state = await waitForState(ctx.agent, (s) => { const r = s.requests.find((x) => x.id === request.id); return !r || !waiting(r); });
    decided = state.requests.find((x) => x.id === request.id) ?? (await ctx.agent.api.refresh({})).requests.find((x) => x.id === request.id) ?? request;
  }
  const approved = decided.state === 'approved';
  const why = decided.decisionReason ? ` (${decided.decisionReason})` : '';
  ctx.print(approved
    ? `Request ${decided.id}: approved${why}. Connect within the activation window: stint connect ${decided.resourceId} [--exec COMMAND]`
    : `Request ${decided.id}: ${decided.state.replace('_', ' ')}${why}.`, { request: decided });
  return approved ? 0 : EXIT_NOT_APPROVED;
}

export async function connect(ctx: CliContext, ref: string, psql: boolean): Promise<number> {
  const grant = findGrant(await ctx.agent.api.refresh({}), ref);
  await hold(ctx, await ctx.agent.api.connect({ grantId: grant.grant.id }), psql);
  return 0;
}

/**
 * Take back access left from before (Stint stopped while it was active): new keys from the server for the same grant
 * and end, then hold the tunnel like `connect`. A one-time code when policy asked the request for a step-up.
 */
export async function resume(ctx: CliContext, ref: string, o: { code?: string; psql: boolean }): Promise<number> {
  const { agent, io } = ctx;
  const state = await agent.api.refresh({});
  const live = liveGrants(state);
  const grant = live.find((g) => g.grant.id === ref) ?? live.find((g) => g.leftFromBefore && g.grant.resourceId === ref) ?? findGrant(state, ref);
  if (!grant.leftFromBefore) {
    throw new CliError(`${grant.grant.resourceId} (${grant.grant.id}) was not left from before: there is nothing to resume.`, 1, 'To open its tunnel, use `stint connect`.');
  }
  const grantId = grant.grant.id;
  const connection = await withStepUp(agent, { kind: 'request', requestId: grant.grant.requestId },
    (stepUp) => agent.api.resumeGrant({ grantId, ...(stepUp ? { stepUp } : {}) }),
    { io, profile: ctx.profile, doing: 'Resuming this access', ...(o.code ? { code: o.code } : {}) });
  if (!ctx.json) io.out(`${grant.grant.resourceId}: resumed with new keys (the old ones no longer work), ${timeLeft(grant)}.`);
  await hold(ctx, connection, o.psql);
  return 0;
}

export async function release(ctx: CliContext, ref: string): Promise<number> {
  const grant = findGrant(await ctx.agent.api.refresh({}), ref);
  const out = await ctx.agent.api.release({ grantId: grant.grant.id });
  ctx.print(`${grant.grant.resourceId}: access ended.`, out);
  return 0;
}
