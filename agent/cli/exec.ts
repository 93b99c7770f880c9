// `stint connect <resource> --exec COMMAND`: run one command with a grant's connection, then end the grant. For a CI
// job's migration or a bot's query: the approved request is activated here (or a grant left from an earlier run is
// taken back with new keys), the command runs with the environment the grant's kind gives it (agent/core/kinds:
// libpq's PG* for PostgreSQL, the option file and MYSQL_* for MariaDB, the ssh_config and alias for SSH), and when it
// exits the grant is released and its exit code is stint's. If the grant ends first (deadline, revoke), the command
// is stopped (SIGTERM to its process group). Nothing of the connection is written to disk; the password is only in the child's environment.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { AgentState, ConnectResult } from '../../shared/contract/agent';
import type { CliContext } from './context';
import { CliError } from './explain';

/** Activate my approved request for `ref` (a request or resource id), or take back my live grant of it. */
async function connectionFor(ctx: CliContext, ref: string): Promise<ConnectResult> {
  const state = await ctx.agent.api.refresh({});
  const approved = state.requests
    .filter((r) => r.state === 'approved' && !r.grantId && !r.extendsGrantId && (r.id === ref || r.resourceId === ref))
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  if (approved) return ctx.agent.api.activateRequest({ requestId: approved.id });
  const live = state.grants.find((g) => g.phase !== 'ended' && (g.grant.id === ref || g.grant.resourceId === ref));
  if (live?.leftFromBefore) return ctx.agent.api.resumeGrant({ grantId: live.grant.id });
  if (live) return ctx.agent.api.connect({ grantId: live.grant.id });
  throw new CliError(`Nothing to connect to for "${ref}": no approved request and no active access of yours.`, 1, `Ask first: stint request ${ref} --ticket … --wait`);
}

const isLive = (state: AgentState, grantId: string) => state.grants.some((g) => g.grant.id === grantId && g.phase !== 'ended');

export async function execWithGrant(ctx: CliContext, ref: string, command: string): Promise<number> {
  const { agent, io } = ctx;
  const connection = await connectionFor(ctx, ref);
  const { env: connectionEnv } = await agent.api.execEnv({ grantId: connection.grantId });
  // The child gets the connection, never this run's own credentials.
  const { STINT_CLIENT_SECRET: _secret, ...env } = process.env;
  // Its own process group, so stopping it stops what it started too (a `sleep`, a psql) instead of orphaning them.
  const child = spawn('/bin/sh', ['-c', command], {
    stdio: 'inherit',
    detached: true,
    env: { ...env, ...connectionEnv },
  });
  io.err(`stint: ${connection.user}@${connection.host}:${connection.port}/${connection.database} (grant ${connection.grantId}) — running the command.`);
  // A cancelled CI job (SIGTERM) or Ctrl+C stops the command; the grant is still released below.
  const stop = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const forward = (signal: NodeJS.Signals) => () => stop(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let endedFirst = false;
  const stopWatching = agent.subscribe((event) => {
    if (event.type !== 'state' || isLive(event.state, connection.grantId)) return;
    endedFirst = true;
    stop('SIGTERM');
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (status, signal) => resolve(status ?? 128 + (signal ? constants.signals[signal] : 0)));
  }).finally(() => {
    stopWatching();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  });
  if (endedFirst) {
    io.err(`stint: the access ended before the command did (${ref}); the command was stopped.`);
    return code;
  }
  // The command's outcome is the job's: a release that fails is said, and the grant still ends at its deadline.
  try {
    const { grant } = await agent.api.release({ grantId: connection.grantId });
    io.err(ctx.json ? JSON.stringify({ grantId: grant.id, state: grant.state, exitCode: code }) : `stint: access ended (grant ${grant.id} ${grant.state}); the command exited with ${code}.`);
  } catch (error) {
    io.err(`stint: the access could not be released now (${error instanceof Error ? error.message : String(error)}); it ends at its deadline.`);
  }
  return code;
}
