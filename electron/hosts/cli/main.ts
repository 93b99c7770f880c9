// `stint`: the agent from a terminal. Each command runs the same core as the tray app: the session comes from the
// keychain, deadlines are enforced locally, and a tunnel lives as long as the `stint` process that opened it
// (SSH keys are memory-only by design), so `request` and `connect` stay in the foreground until the access ends
// or Ctrl+C ends it.
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { createAgent } from '../../core/compose';
import { ConfSettingsStore } from '../../core/settings';
import { formatCountdown } from '../../../shared/domain/countdown';
import { toAgentProblem } from '../../core/agent-core';
import type { Agent } from '../../core/agent';
import type { AgentState, ConnectResult, LocalGrant } from '../../../shared/contract/agent';
import { parseDuration } from '../../../shared/domain/duration';

const USAGE = `usage: stint <command> [options]

  login [--server URL] [--issuer URL] [--audience AUD]   sign in (opens your browser)
  logout                                                  sign out and wipe every local secret
  resources                                               what you may request
  request <resource> [--for 30m] [--reason TEXT] [--level read] [--ticket T] [--no-wait] [--psql]
                                                          ask for access; waits for approval, then connects
  grants                                                  your access, with time left
  connect <resource|grant> [--psql]                       open the tunnel for active access and hold it
  release <resource|grant>                                end access now
  approve <request> [--comment TEXT]                      approve a request waiting for you
  deny <request> --reason TEXT                            deny a request waiting for you
  options: --json (machine-readable output), --config-dir DIR (settings location)`;

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

function findGrant(state: AgentState, ref: string): LocalGrant {
  const live = state.grants.filter((g) => g.localState === 'active');
  const match = live.find((g) => g.grant.id === ref) ?? live.find((g) => g.grant.resourceId === ref);
  if (!match) throw new CliError(`No active access matches "${ref}". See \`stint grants\`.`);
  return match;
}

function timeLeft(g: LocalGrant, now = Date.now()): string {
  return formatCountdown(Math.max(0, Date.parse(g.localEndsAt) - now));
}

/** Resolve when `until` holds for the agent's state (checked on every state event), or reject on SIGINT. */
function waitForState(agent: Agent, until: (state: AgentState) => boolean): Promise<AgentState> {
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

async function hold(agent: Agent, connection: ConnectResult, opts: { json: boolean; psql: boolean }, io: Io): Promise<void> {
  const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
  if (opts.json) io.out(JSON.stringify({ ...connection, uri }));
  else {
    if (connection.message) io.err(connection.message);
    io.out(`Connected: ${uri.replace(/:[^:@/]+@/, ':••••@')}`);
    io.out('The tunnel stays open while this command runs. Ctrl+C ends it (the access itself runs on until its deadline or `stint release`).');
  }
  const ended = waitForState(agent, (state) => !state.grants.some((g) => g.grant.id === connection.grantId && g.localState === 'active'));
  if (opts.psql) {
    const psql = spawn('psql', ['-h', connection.host, '-p', String(connection.port), '-U', connection.user, connection.database], {
      stdio: 'inherit',
      // The password goes through the environment of the child only, never on a command line.
      env: { ...process.env, PGPASSWORD: new URL(uri).password ? decodeURIComponent(new URL(uri).password) : '' },
    });
    await Promise.race([new Promise((r) => psql.once('exit', r)), ended.then(() => psql.kill('SIGTERM'))]);
    return;
  }
  await ended.catch((error) => { if (!(error instanceof CliError && error.exitCode === 130)) throw error; });
  if (!opts.json) io.out('Access ended: tunnel closed, credentials wiped.');
}

export async function runCli(argv: string[], io: Io = { out: (l) => console.log(l), err: (l) => console.error(l) }, make?: () => Agent): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      'config-dir': { type: 'string' },
      server: { type: 'string' }, issuer: { type: 'string' }, audience: { type: 'string' },
      for: { type: 'string' }, reason: { type: 'string' }, level: { type: 'string' }, ticket: { type: 'string' },
      comment: { type: 'string' }, 'no-wait': { type: 'boolean', default: false }, psql: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, target] = positionals;
  if (!command || values.help) {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  const json = values.json!;
  // Bad input is refused before anything touches the keychain or the network.
  const parsed = values.for ? parseDuration(values.for) : undefined;
  if (parsed && !parsed.ok) {
    io.err(`--for "${values.for}" is not ${parsed.message}.`);
    return 2;
  }
  const durationSeconds = parsed?.ok ? parsed.seconds : undefined;
  if (command === 'deny' && !values.reason) {
    io.err('Denying needs --reason: the requester sees it.');
    return 2;
  }
  const agent = make ? make() : createAgent({
    settings: new ConfSettingsStore(values['config-dir'] ? { cwd: values['config-dir'] } : {}),
    openUrl: (url) => {
      io.err(`Opening your browser to sign in. If nothing opens, visit:\n  ${url}`);
      const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
      spawn(opener, [url], { stdio: 'ignore', detached: true }).on('error', () => undefined).unref();
    },
  });
  const print = (human: string, data: unknown) => io.out(json ? JSON.stringify(data) : human);
  try {
    if (command === 'login' && (values.server || values.issuer || values.audience)) {
      await agent.api.updateSettings({
        ...(values.server ? { serverUrl: values.server } : {}),
        ...(values.issuer ? { issuer: values.issuer } : {}),
        ...(values.audience ? { audience: values.audience } : {}),
      });
    }
    await agent.start();
    const need = (what: string) => { if (!target) throw new CliError(`stint ${command} needs ${what}. See \`stint --help\`.`, 2); return target; };
    switch (command) {
      case 'login': {
        const { user } = await agent.api.signIn({});
        print(`Signed in as ${user.email ?? user.sub}.`, { user });
        return 0;
      }
      case 'logout':
        await agent.api.signOut({});
        print('Signed out. Local secrets and tunnels are wiped.', { ok: true });
        return 0;
      case 'resources': {
        const state = await agent.api.refresh({});
        if (json) io.out(JSON.stringify(state.resources));
        else for (const r of state.resources) {
          const p = r.policy;
          const needs = p.autoApprove && !p.approvals.length ? 'instant' : p.approvals.length ? `needs approval (${p.approvals.map((a) => `${a.count} ${a.group}`).join(' + ')})` : 'instant';
          io.out(`${r.id.padEnd(24)} ${r.environment.padEnd(12)} ${r.levels.join('/').padEnd(12)} ${needs}${p.stepUp.request !== 'never' ? ', step-up' : ''}`);
        }
        return 0;
      }
      case 'grants': {
        const state = await agent.api.refresh({});
        const live = state.grants.filter((g) => g.localState === 'active');
        if (json) io.out(JSON.stringify(live));
        else if (!live.length) io.out('No active access.');
        else for (const g of live) io.out(`${g.grant.resourceId} · ${g.grant.level} · ${timeLeft(g)} left  (${g.grant.id})`);
        return 0;
      }
      case 'request': {
        const resourceId = need('a resource id');
        const state = agent.state();
        const resource = state.resources.find((r) => r.id === resourceId);
        if (!resource) throw new CliError(`You cannot request "${resourceId}". See \`stint resources\`.`);
        const created = await agent.api.createRequest({
          resourceId, level: values.level ?? resource.levels[0]!, reason: values.reason ?? '',
          ...(durationSeconds ? { durationSeconds } : {}), ...(values.ticket ? { ticket: values.ticket } : {}), connect: true,
        });
        if (created.connection) {
          await hold(agent, created.connection, { json, psql: values.psql! }, io);
          return 0;
        }
        const { request } = created;
        if (request.state === 'pending_stepup') throw new CliError('This request needs you to verify it is you (passkey or code): finish it in the Stint app.');
        if (values['no-wait'] || request.state !== 'pending_approval') {
          print(`Request ${request.id}: ${request.state.replace('_', ' ')}.`, { request });
          return request.state === 'denied' ? 1 : 0;
        }
        if (!json) io.out(`Waiting for approval (${request.approvalsNeeded.map((a) => `${a.have}/${a.count} ${a.group}`).join(', ')}). Ctrl+C stops waiting; the request stays open.`);
        const decided = await waitForState(agent, (s) => {
          const r = s.requests.find((x) => x.id === request.id);
          return !r || r.state !== 'pending_approval' || s.grants.some((g) => g.grant.requestId === request.id && g.tunnel?.status === 'open');
        });
        const grant = decided.grants.find((g) => g.grant.requestId === request.id);
        if (!grant) {
          const r = decided.requests.find((x) => x.id === request.id);
          throw new CliError(`Request ${r?.state ?? 'ended'}${r?.decisionReason ? `: ${r.decisionReason}` : ''}.`);
        }
        await hold(agent, await agent.api.connect({ grantId: grant.grant.id }), { json, psql: values.psql! }, io);
        return 0;
      }
      case 'connect': {
        const grant = findGrant(await agent.api.refresh({}), need('a resource or grant id'));
        await hold(agent, await agent.api.connect({ grantId: grant.grant.id }), { json, psql: values.psql! }, io);
        return 0;
      }
      case 'release': {
        const grant = findGrant(await agent.api.refresh({}), need('a resource or grant id'));
        const out = await agent.api.release({ grantId: grant.grant.id });
        print(`${grant.grant.resourceId}: access ended.`, out);
        return 0;
      }
      case 'approve': {
        const out = await agent.api.approve({ requestId: need('a request id'), ...(values.comment ? { comment: values.comment } : {}) });
        print(`Approved ${out.request.id} (${out.request.state.replace('_', ' ')}).`, out);
        return 0;
      }
      case 'deny': {
        const out = await agent.api.deny({ requestId: need('a request id'), reason: values.reason! });
        print(`Denied ${out.request.id}.`, out);
        return 0;
      }
      default:
        throw new CliError(`Unknown command "${command}".\n${USAGE}`, 2);
    }
  } catch (error) {
    if (error instanceof CliError) {
      io.err(error.message);
      return error.exitCode;
    }
    const problem = toAgentProblem(error);
    io.err(json ? JSON.stringify({ error: problem }) : `${problem.message} (${problem.code})`);
    return 1;
  } finally {
    await agent.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
