// `stint`: the agent from a terminal. Each command runs the same core as the tray app, in its own profile (keychain
// namespace and settings, `cli` unless --profile/$STINT_PROFILE says otherwise): the session comes from the
// keychain, deadlines are enforced locally, and a tunnel lives as long as the `stint` process that opened it.
// This file reads the command line, refuses bad input before anything touches the keychain or the network, starts
// the agent and hands over to the command; failures are put in words with what to do next (explain.ts).
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createAgent, createServiceAgent } from '../core/compose';
import { toAgentProblem } from '../core/agent-core';
import { listenLocalSocket, socketPathFor } from '../core/local-socket';
import type { AgentProblem } from '../../shared/contract/agent';
import { parseDuration } from '../../shared/domain/duration';
import { connect, listGrants, listResources, release, requestAccess, resume } from './access';
import { approve, deny, listApprovals } from './approvals';
import { listReviews, recordReview } from './reviews';
import type { CliContext } from './context';
import { CliError, explain, ReportedProblem } from './explain';
import { execWithGrant } from './exec';
import { headlessFromEnv, isHeadless, runFilesFolder } from './headless';
import { cliSettings, profileDataDir, resolveProfile } from './profile';
import { connectRemoteAgent, type CliAgent } from './remote-agent';
import { CODE_PATTERN } from './stepup';
import { openUrl, terminalIo, type Io } from './terminal';
import { COMMANDS, commandUsage, usage } from './usage';

export { CliError } from './explain';
export type { Io } from './terminal';

/** How the agent is made: by default the real one of the profile; tests may hand in their own. */
export type MakeAgent = (context: { profile: string; configDir?: string }) => CliAgent;

const OPTIONS = {
  json: { type: 'boolean', default: false },
  profile: { type: 'string' },
  agent: { type: 'string' },
  'config-dir': { type: 'string' },
  server: { type: 'string' }, issuer: { type: 'string' }, audience: { type: 'string' },
  for: { type: 'string' }, reason: { type: 'string' }, level: { type: 'string' }, ticket: { type: 'string' },
  comment: { type: 'string' }, code: { type: 'string' },
  outcome: { type: 'string' }, note: { type: 'string' }, all: { type: 'boolean', default: false },
  'no-wait': { type: 'boolean', default: false }, wait: { type: 'boolean', default: false }, psql: { type: 'boolean', default: false },
  exec: { type: 'string' },
  /** Run the grant's client command (psql, mariadb, …); --psql says the same. */
  client: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Commands that work on something: what they need, checked before the agent starts. */
const TARGETS: Record<string, string> = {
  request: 'a resource id', connect: 'a resource or grant id', resume: 'a grant (or resource) id', release: 'a resource or grant id', approve: 'a request id', deny: 'a request id', review: 'a review id',
};

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (error) {
    // Node's words ("Unknown option '--x'. To specify a positional…"): the first sentence is the one that helps.
    const first = (error instanceof Error ? error.message : String(error)).split(/\.\s/)[0]!.replace(/\.$/, '');
    throw new CliError(`${first}.`, 2, 'See `stint --help`.');
  }
}

/** Help and usage errors: whatever is printed here needs no agent. Returns the exit code, or undefined to go on. */
function helpOrUsage(command: string | undefined, target: string | undefined, help: boolean, io: Io): number | undefined {
  const known = (name: string) => COMMANDS.some((c) => c.name === name);
  if (command === 'help') {
    if (!target) { io.out(usage()); return 0; }
    const one = commandUsage(target);
    if (one) { io.out(one); return 0; }
    io.err(`Unknown command "${target}".\n\n${usage()}`);
    return 2;
  }
  if (!command) {
    if (help) { io.out(usage()); return 0; }
    io.err(usage());
    return 2;
  }
  if (!known(command)) {
    io.err(`Unknown command "${command}".\n\n${usage()}`);
    return 2;
  }
  if (help) { io.out(commandUsage(command)!); return 0; }
  return undefined;
}

function printError(io: Io, json: boolean, error: unknown, profile: string): number {
  if (error instanceof CliError) {
    const code = error.exitCode === 2 ? 'usage' : error.exitCode === 130 ? 'stopped' : 'failed';
    io.err(json ? JSON.stringify({ error: { code, message: error.message, ...(error.next ? { next: error.next } : {}) } }) : [error.message, error.next].filter(Boolean).join('\n'));
    return error.exitCode;
  }
  const problem: AgentProblem = error instanceof ReportedProblem ? error.problem : toAgentProblem(error);
  const words = explain(problem, { profile });
  io.err(json ? JSON.stringify({ error: { ...problem, message: words.message, ...(words.next ? { next: words.next } : {}) } }) : [words.message, words.next].filter(Boolean).join('\n'));
  return 1;
}

function openInBrowser(io: Io): (url: string) => void {
  return (url) => {
    io.err(`Opening your browser to sign in. If nothing opens, visit:\n  ${url}`);
    (io.open ?? openUrl)(url);
  };
}

export async function runCli(argv: string[], io: Io = terminalIo(), make?: MakeAgent): Promise<number> {
  let json = argv.includes('--json');
  let profile = 'cli';
  let agent: CliAgent | undefined;
  let socket: { close: () => Promise<void> } | undefined;
  let runFiles: Awaited<ReturnType<typeof runFilesFolder>> | undefined;
  try {
    const { values, positionals } = parse(argv);
    json = values.json;
    const [command, target] = positionals;
    const early = helpOrUsage(command, target, values.help, io);
    if (early !== undefined) return early;
    // Bad input is refused before anything touches the keychain or the network.
    profile = resolveProfile(values.profile);
    const parsed = values.for ? parseDuration(values.for) : undefined;
    if (parsed && !parsed.ok) throw new CliError(`--for "${values.for}" is not ${parsed.message}.`, 2);
    if (command === 'deny' && !values.reason?.trim()) throw new CliError('Denying needs --reason: the requester sees it.', 2);
    if (command === 'review' && values.outcome !== 'ok' && values.outcome !== 'concern') throw new CliError('A review needs --outcome ok or --outcome concern.', 2, 'With a concern, say what it is with --note TEXT.');
    if (command === 'review' && values.outcome === 'concern' && !values.note?.trim()) throw new CliError('A concern needs --note TEXT: say what it is.', 2);
    if (values.code !== undefined && !CODE_PATTERN.test(values.code)) throw new CliError('--code is the 6 digits your authenticator app shows, e.g. --code 123456.', 2);
    if (TARGETS[command!] && !target) throw new CliError(`stint ${command} needs ${TARGETS[command!]}.`, 2, `See \`stint ${command} --help\`.`);
    // Another process's agent signs in and out in its own window: a login driven through its socket would open the
    // sign-in page over there (or nowhere) and wait silently.
    if (values.agent && (command === 'login' || command === 'logout')) {
      throw new CliError(`stint ${command} signs in this terminal's own profile, not the agent at ${values.agent}.`, 2, `Sign ${command === 'login' ? 'in' : 'out'} in that agent's window (the tray app, or the demo user's link npm start printed), or run \`stint ${command}\` without --agent.`);
    }
    if (values.wait && values['no-wait']) throw new CliError('--wait and --no-wait cannot be used together.', 2);
    if (values.exec !== undefined && (command !== 'connect' || !values.exec.trim())) throw new CliError('--exec takes a command, and goes with `stint connect`.', 2, 'See `stint connect --help`.');

    // A CI job or bot (STINT_CLIENT_ID or STINT_TOKEN_FILE): its own session, nothing in a keychain or on disk.
    if (!make && isHeadless(process.env)) {
      const headless = await headlessFromEnv(process.env, { ...(values.server ? { server: values.server } : {}), ...(values.issuer ? { issuer: values.issuer } : {}), ...(values.audience ? { audience: values.audience } : {}) });
      profile = headless.who;
      runFiles = await runFilesFolder();
      agent = createServiceAgent({ settings: headless.settings, credentials: headless.credentials, clientFilesDir: join(runFiles.dir, 'grants') });
    }

    const configDir = values['config-dir'];
    const settings = make || agent ? undefined : cliSettings(profile, configDir);
    const dataDir = settings ? profileDataDir(settings, profile) : undefined;
    // An agent of this profile that is already running (a `stint request` holding a tunnel in another terminal), or
    // the one named with --agent (a demo user's, the tray app's), is driven through its socket: it holds the keys.
    const remote = agent ? undefined : values.agent ? await connectRemoteAgent(values.agent, true) : dataDir ? await connectRemoteAgent(socketPathFor(dataDir)) : undefined;
    agent ??= remote
      ?? (make ? make({ profile, ...(configDir ? { configDir } : {}) }) : createAgent({ settings: settings!, profile, openUrl: openInBrowser(io), ...(dataDir ? { dataDir } : {}) }));
    if (command === 'login' && !isHeadless(process.env) && (values.server || values.issuer || values.audience)) {
      await agent.api.updateSettings({
        ...(values.server ? { serverUrl: values.server } : {}),
        ...(values.issuer ? { issuer: values.issuer } : {}),
        ...(values.audience ? { audience: values.audience } : {}),
      });
    }
    // A failure while restoring the session at start is reported as an event: keep it to explain a signed-out start.
    const startProblems: AgentProblem[] = [];
    const unlisten = agent.subscribe((event) => { if (event.type === 'problem') startProblems.push(event.problem); });
    await agent.start();
    unlisten();
    // While this run holds a tunnel, other `stint` runs of the profile reach it through its socket.
    if (!remote && dataDir && (command === 'request' || command === 'connect' || command === 'resume')) socket = await listenLocalSocket({ agent, dataDir });
    if (command !== 'login' && command !== 'logout' && agent.state().session.status !== 'signed_in') {
      if (startProblems[0]) throw new ReportedProblem(startProblems[0]);
      if (isHeadless(process.env)) throw new CliError(`The service (${profile}) is not signed in.`, 1, 'Check STINT_CLIENT_ID and its secret, or STINT_TOKEN_FILE.');
      // `stint login` would sign in the cli profile, not the agent named with --agent: point at its window instead.
      if (values.agent) throw new CliError(`The agent at ${values.agent} is not signed in.`, 1, 'Sign in in its window (the tray app, or the demo user\'s link npm start printed), then try again.');
      throw new CliError(`You are not signed in (profile ${profile}).`, 1, `Run \`stint login${profile === 'cli' ? '' : ` --profile ${profile}`}\` first.`);
    }

    const ctx: CliContext = { agent, remote: Boolean(remote), io, json, profile, print: (human, data) => io.out(json ? JSON.stringify(data) : human) };
    switch (command) {
      case 'login': {
        const { user } = await agent.api.signIn({});
        ctx.print(`Signed in as ${user.email ?? user.sub} (profile ${profile}).`, { user });
        return 0;
      }
      case 'logout':
        await agent.api.signOut({});
        ctx.print(`Signed out (profile ${profile}). Its local secrets and tunnels are wiped.`, { ok: true });
        return 0;
      case 'resources': return await listResources(ctx);
      case 'grants': return await listGrants(ctx);
      case 'approvals': return await listApprovals(ctx);
      case 'request': {
        const durationSeconds = parsed?.ok ? parsed.seconds : undefined;
        return await requestAccess(ctx, target!, {
          noWait: values['no-wait'], wait: values.wait, psql: values.psql || values.client,
          ...(values.level ? { level: values.level } : {}), ...(values.reason ? { reason: values.reason } : {}),
          ...(values.ticket ? { ticket: values.ticket } : {}), ...(durationSeconds ? { durationSeconds } : {}), ...(values.code ? { code: values.code } : {}),
        });
      }
      case 'connect': return values.exec ? await execWithGrant(ctx, target!, values.exec) : await connect(ctx, target!, values.psql || values.client);
      case 'resume': return await resume(ctx, target!, { psql: values.psql || values.client, ...(values.code ? { code: values.code } : {}) });
      case 'release': return await release(ctx, target!);
      case 'approve': return await approve(ctx, target!, { ...(values.comment ? { comment: values.comment } : {}), ...(values.code ? { code: values.code } : {}) });
      case 'deny': return await deny(ctx, target!, values.reason!.trim());
      case 'reviews': return await listReviews(ctx, values.all);
      case 'review': return await recordReview(ctx, target!, values.outcome as 'ok' | 'concern', values.note?.trim());
      default: throw new CliError(`Unknown command "${command}".`, 2, 'See `stint --help`.');
    }
  } catch (error) {
    return printError(io, json, error, profile);
  } finally {
    await socket?.close();
    await agent?.dispose();
    await runFiles?.remove();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
