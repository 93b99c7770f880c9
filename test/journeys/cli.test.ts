// `stint` on the real stack: a session restored from the keychain, resources listed, and `request` holding a tunnel
// in the foreground until the access ends — the URI works while it runs, and the command returns when it ends.
// Then the CLI as its own profiles: help, its own keychain namespace beside the tray app's, the approver's inbox, and
// approving a production request whose policy wants a one-time code from the approver (TOTP enrolled on the real
// server, codes made from the secret it handed out).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startStack, type Stack } from '../harness/stack';
import { AuthenticatorApp } from '../harness/authenticator';
import { driveDevInteractions } from '../../dev/idp';
import { createAgent, keychainServiceFor } from '../../agent/core/compose';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { runCli, type Io } from '../../agent/cli/main';
import { cliSettings } from '../../agent/cli/profile';
import { serviceDir } from '../../dev/run-dir';
import { refreshTokenAccount } from '../../agent/core/session';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { call } from '../server/helpers';
import type { AuditEntry } from '../../shared/contract/http';
import { requestHint } from '../../agent/core/models';

const execFileP = promisify(execFile);
/** A command line as pasted into a shell. */
const sh = async (line: string) => (await execFileP('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  // Sign in once (as `stint login` would); later commands restore the session from the keychain.
  const first = stack.agent('alice');
  await first.signIn();
  await first.agent.dispose();
}, 120_000);
afterAll(async () => { await stack?.stop(); });

function io(answers?: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const terminal: Io = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    // A terminal that answers from a script; without answers there is no terminal (like a pipe).
    ...(answers ? { ask: async (question: string) => { asked.push(question); return answers.shift() ?? ''; } } : {}),
  };
  return { out, err, asked, io: terminal };
}

const noAgent = () => { throw new Error('no agent needed'); };

describe('stint CLI', () => {
  it('lists what alice may request, as JSON', async () => {
    const r = io();
    expect(await runCli(['resources', '--json'], r.io, () => stack.agent('alice').agent)).toBe(0);
    expect(JSON.parse(r.out[0]!).map((x: { id: string }) => x.id).sort()).toEqual(['prod-orders', 'staging-shop', 'staging-users', 'staging-web']);
  });

  it('lists what alice may request in the tray\'s words for the same policy: instant, needs approval (from whom), step-up', async () => {
    const r = io();
    const agent = stack.agent('alice').agent;
    expect(await runCli(['resources'], r.io, () => agent)).toBe(0);
    const { resources } = await agent.api.refresh({});
    expect(resources.length).toBeGreaterThan(1);
    const lineOf = (id: string) => r.out.find((line) => line.startsWith(`${id} `))!;
    for (const resource of resources) expect(lineOf(resource.id)).toContain(requestHint(resource));
    // A resource the tray calls instant is instant here too (the CLI said "needs approval … unless the risk is low").
    const instant = resources.filter((x) => requestHint(x) === 'instant');
    expect(instant.length).toBeGreaterThan(0);
    for (const resource of instant) expect(lineOf(resource.id)).not.toMatch(/needs approval|unless the risk/);
    const approved = resources.filter((x) => requestHint(x) === 'needs approval');
    expect(approved.length).toBeGreaterThan(0);
    for (const resource of approved) expect(lineOf(resource.id)).toMatch(/needs approval.* \(from [a-z]/);
  });

  it('refuses bad input before touching anything: a wrong duration, a deny without reason', async () => {
    const r = io();
    expect(await runCli(['request', 'staging-users', '--for', '5 parsecs'], r.io, () => { throw new Error('no agent needed'); })).toBe(2);
    expect(r.err[0]).toMatch(/--for "5 parsecs" is not a duration like/);
    expect(await runCli(['deny', 'req_1'], r.io, () => { throw new Error('no agent needed'); })).toBe(2);
    expect(r.err[1]).toMatch(/needs --reason/);
  });

  it('request holds the tunnel until the deadline, then returns', async () => {
    const r = io();
    const running = runCli(['request', 'staging-users', '--for', '6s', '--reason', 'cli check', '--json'], r.io, () => stack.agent('alice').agent);
    await expect.poll(() => r.out.length, { timeout: 20_000 }).toBe(1);
    const { uri, port } = JSON.parse(r.out[0]!);
    expect(uri).toContain(`@127.0.0.1:${port}/users`);
    const client = new pg.Client({ connectionString: uri });
    client.on('error', () => undefined);
    await client.connect();
    expect((await client.query('select count(*)::int as n from users')).rows[0].n).toBe(25);
    await client.end();
    expect(await running).toBe(0);
    await expect(new pg.Client({ connectionString: uri }).connect()).rejects.toThrow();
  }, 40_000);
});

describe('stint from a second process', () => {
  it('attaches to the running agent that holds the grant: connect prints a psql command that runs as printed; release from a third process ends it', async () => {
    // The agent holding the grant (a demo user's, the tray app's): its keys and tunnel never leave its process.
    const dir = join(serviceDir('cli-holder'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    try {
      const created = await holder.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'second process', connect: true });
      expect(created.connection?.database).toBe('users');

      const connected = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'connect', 'staging-users', '--json'], { timeout: 30_000 });
      const out = JSON.parse(connected.stdout.trim().split('\n').at(-1)!);
      expect(out.psql).toMatch(/^psql 'host=127\.0\.0\.1 port=\d+ dbname=users user=\S+ passfile=\S+'$/);
      expect(await sh(`${out.psql} -At -c 'select count(*) from users'`)).toBe('25');

      // Not held by the second process: the tunnel is still there after it exited.
      expect(await sh(`${out.psql} -At -c 'select 1'`)).toBe('1');
      const released = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'release', 'staging-users'], { timeout: 30_000 });
      expect(released.stdout).toContain('staging-users: access ended.');
      await expect(sh(`${out.psql} -At -c 'select 1'`)).rejects.toThrow();

      // A socket nobody listens on is named, with what to do.
      const missing = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', join(dir, 'nope.sock'), 'grants'], { timeout: 30_000 }).catch((e) => e);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/No Stint agent socket at .*nope\.sock/);
    } finally {
      await socket.close();
      await holder.agent.dispose();
    }
  }, 60_000);
});

describe('stint and an SSH host (issue #23)', () => {
  it('connect prints the ssh command, which runs a command on the host through the bastion as printed; other logins are refused; after release it is dead and the live session is cut', async () => {
    const dir = join(serviceDir('cli-ssh'), 'alice');
    const holder = stack.agent('alice', { dataDir: dir });
    await holder.signIn();
    const socket = await listenLocalSocket({ agent: holder.agent, dataDir: dir });
    try {
      await holder.agent.api.createRequest({ resourceId: 'staging-web', level: 'shell', reason: 'cli ssh', connect: true });
      const connected = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'connect', 'staging-web', '--json'], { timeout: 30_000 });
      const out = JSON.parse(connected.stdout.trim().split('\n').at(-1)!);
      expect(out.ssh).toMatch(/^ssh -F \S+\/ssh_config stint-staging-web$/);
      expect(await sh(`${out.ssh} 'id -un; echo on-the-host'`)).toBe('stinttarget\non-the-host');
      // The human form prints the same command.
      const human = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'connect', 'staging-web'], { timeout: 30_000 });
      expect(human.stdout).toContain(`  ${out.ssh}\n`);

      // A login the level does not name: refused on the host, by Stint.
      await expect(sh(out.ssh.replace(' stint-staging-web', ' -l stintbastion stint-staging-web') + ' true')).rejects.toThrow(/Permission denied/);

      // A live session (with a TTY, as at a terminal), cut when the access is released from a third process.
      const live = spawn('/bin/sh', ['-c', `${out.ssh.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let said = '';
      live.stdout.on('data', (d: Buffer) => { said += d.toString(); });
      const exited = new Promise((resolve) => live.once('exit', resolve));
      await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');
      const released = await execFileP(process.execPath, ['bin/stint.mjs', '--agent', socket.path, 'release', 'staging-web'], { timeout: 30_000 });
      expect(released.stdout).toContain('staging-web: access ended.');
      const ended = Date.now();
      await exited;
      expect(Date.now() - ended).toBeLessThan(2_000);
      await expect(sh(`${out.ssh} true`)).rejects.toThrow();
      // The grant's ssh files went with it.
      expect(existsSync(out.ssh.split(' ')[2])).toBe(false);

      // In the audit log: the grant, each session on the host with its login, and what became of each at the end.
      const carol = await stack.idp.tokenFor('carol');
      const audit = async () => ((await call(stack.serverUrl, 'GET', `/v1/audit?grantId=${out.grantId}&limit=500`, { token: carol })).body.entries as AuditEntry[]);
      await expect.poll(async () => (await audit()).filter((e) => /^host\.session\.(killed|closed)$/.test(e.action)).length, { timeout: 10_000 }).toBe(2);
      // The credentials count as revoked once the host has confirmed its end and the bastion has cut (500 ms later).
      await expect.poll(async () => (await audit()).some((e) => e.action === 'grant.credentials_revoked'), { timeout: 10_000 }).toBe(true);
      const entries = await audit();
      const opened = entries.filter((e) => e.action === 'host.session.opened');
      expect(opened).toHaveLength(2); // the command and the live session (the refused login opened none)
      for (const row of opened) expect(row).toMatchObject({ actor: 'host:staging-web', subject: 'alice', detail: { hostId: 'staging-web', login: 'stinttarget', pid: expect.any(Number) } });
      expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['request.activated', 'grant.activated', 'grant.released', 'bastion.session.opened', 'grant.credentials_revoked']));
    } finally {
      await socket.close();
      await holder.agent.dispose();
    }
  }, 90_000);
});

describe('stint help', () => {
  it('help, --help and <command> --help print usage and exit 0; an unknown command or none exits 2', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const r = io();
      expect(await runCli(argv, r.io, noAgent), argv.join(' ')).toBe(0);
      expect(r.out.join('\n')).toMatch(/^usage: stint <command>/);
      expect(r.out.join('\n')).toMatch(/^ {2}approvals /m);
      expect(r.err).toEqual([]);
    }
    const one = io();
    expect(await runCli(['approve', '--help'], one.io, noAgent)).toBe(0);
    expect(one.out.join('\n')).toMatch(/^usage: stint approve <request> .*--code 123456/);
    const alsoOne = io();
    expect(await runCli(['help', 'approvals'], alsoOne.io, noAgent)).toBe(0);
    expect(alsoOne.out.join('\n')).toMatch(/^usage: stint approvals/);

    const unknown = io();
    expect(await runCli(['frobnicate'], unknown.io, noAgent)).toBe(2);
    expect(unknown.out).toEqual([]);
    expect(unknown.err.join('\n')).toMatch(/^Unknown command "frobnicate"\.\n\nusage: stint/);
    const none = io();
    expect(await runCli([], none.io, noAgent)).toBe(2);
    expect(none.err.join('\n')).toMatch(/^usage: stint/);
    const badOption = io();
    expect(await runCli(['grants', '--frob'], badOption.io, noAgent)).toBe(2);
    expect(badOption.err.join('\n')).toMatch(/^Unknown option '--frob'\.\nSee `stint --help`\.$/);
    const badProfile = io();
    expect(await runCli(['grants', '--profile', 'Not OK'], badProfile.io, noAgent)).toBe(2);
    expect(badProfile.err.join('\n')).toMatch(/Profile names are lower-case letters/);
    const badCode = io();
    expect(await runCli(['approve', 'req_1', '--code', '12ab'], badCode.io, noAgent)).toBe(2);
    expect(badCode.err.join('\n')).toMatch(/--code is the 6 digits/);
  });
});

describe('stint profiles, approvals and step-up', () => {
  let configDir: string;
  const authenticators: Record<string, AuthenticatorApp> = {};
  /** alice's first request, still waiting for bob after the inbox test. */
  let waiting: string | undefined;
  const as = (profile: string, ...argv: string[]) => [...argv, '--profile', profile, '--config-dir', configDir];

  /** `stint login --profile <user>-t` for a demo user (the IdP's pages driven over HTTP); TOTP enrolled if asked. */
  async function login(user: string, options: { totp?: boolean } = {}): Promise<void> {
    const settings = cliSettings(`${user}-t`, configDir);
    settings.update({ serverUrl: stack.serverUrl, issuer: stack.idp.issuer, audience: stack.idp.audience });
    const agent = createAgent({ settings, profile: `${user}-t`, openUrl: async (url) => { await fetch(await driveDevInteractions(url, user, stack.idp.issuer)); } });
    try {
      await agent.start();
      await agent.api.signIn({});
      if (options.totp) {
        const { secret } = await agent.api.enrollTotp({});
        const authenticator = new AuthenticatorApp(secret);
        await agent.api.confirmTotp({ code: await authenticator.nextCode() });
        authenticators[user] = authenticator;
      }
    } finally {
      await agent.dispose();
    }
  }

  /** alice asks for production access through the CLI, with her one-time code: the request then waits for approvers. */
  async function aliceRequestsProduction(reason: string): Promise<string> {
    const r = io();
    const code = await authenticators.alice!.nextCode();
    expect(await runCli(as('alice-t', 'request', 'prod-orders', '--for', '1h', '--reason', reason, '--ticket', 'INC-42', '--code', code, '--no-wait', '--json'), r.io), r.err.join('\n')).toBe(0);
    const { request } = JSON.parse(r.out[0]!);
    expect(request).toMatchObject({ resourceId: 'prod-orders', state: 'pending_approval', reason });
    return request.id;
  }

  beforeAll(async () => {
    configDir = serviceDir('cli-profiles');
    await login('alice', { totp: true });
    await login('bob', { totp: true });
    await login('dave');
    await login('carol');
  }, 60_000);

  it('starts in its own keychain namespace: the tray app\'s items survive a CLI start, its own leftovers do not', async () => {
    const tray = new KeytarSecretStore(keychainServiceFor());
    const cli = new KeytarSecretStore(keychainServiceFor('cli'));
    await tray.set('grant:grt_tray_live', '{"dbUser":"u","dbPassword":"p"}');
    await cli.set('grant:grt_cli_crashed', '{"dbUser":"u","dbPassword":"p"}');
    const saved = process.env.STINT_PROFILE;
    delete process.env.STINT_PROFILE;
    try {
      // The default profile (`cli`), never signed in here: it starts (wiping its own leftovers) and says what to do.
      const r = io();
      expect(await runCli(['grants', '--config-dir', configDir], r.io)).toBe(1);
      expect(r.err.join('\n')).toBe('You are not signed in (profile cli).\nRun `stint login` first.');
      expect(await tray.get('grant:grt_tray_live')).toBe('{"dbUser":"u","dbPassword":"p"}');
      expect(await cli.list()).not.toContain('grant:grt_cli_crashed');
      // The tray app's session (alice signed in through the stack's agent) is untouched too.
      expect(await tray.get(refreshTokenAccount({ issuer: stack.idp.issuer, clientId: stack.idp.clientId, audience: stack.idp.audience }))).toBeTruthy();
    } finally {
      if (saved !== undefined) process.env.STINT_PROFILE = saved;
      await tray.delete('grant:grt_tray_live');
    }
  });

  it('$STINT_PROFILE picks the profile when --profile is not given', async () => {
    const saved = process.env.STINT_PROFILE;
    process.env.STINT_PROFILE = 'bob-t';
    try {
      const r = io();
      expect(await runCli(['approvals', '--config-dir', configDir, '--json'], r.io), r.err.join('\n')).toBe(0);
      expect(JSON.parse(r.out[0]!)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.STINT_PROFILE;
      else process.env.STINT_PROFILE = saved;
    }
  });

  it('approvals shows alice\'s request to bob (who, what, how long, why, age, step-up), and as JSON to dave', async () => {
    const id = await aliceRequestsProduction('fix stuck orders');
    waiting = id;
    const r = io();
    expect(await runCli(as('bob-t', 'approvals'), r.io), r.err.join('\n')).toBe(0);
    const text = r.out.join('\n');
    expect(text).toContain(`${id}  `);
    expect(text).toMatch(/Alice \(engineer\) \[alice\] asks for read access to prod-orders \(Orders \(production\)\) for 1h/);
    expect(text).toContain('reason: "fix stuck orders"   ticket: INC-42');
    expect(text).toMatch(/asked \d+s ago, expires in \d+m · risk \w+ \(\d+\/100.*\) · approvals 0\/1 dba, 0\/1 sre-leads/);
    expect(text).toContain('Approving needs a passkey or a one-time code (a passkey in the browser: stint approve prints the link)');
    expect(text).toContain(`stint approve <id>`);

    // carol (admins, dba) may not request prod-orders, so she cannot see its policy: the server says it all the same.
    const c = io();
    expect(await runCli(as('carol-t', 'approvals'), c.io), c.err.join('\n')).toBe(0);
    expect(c.out.join('\n')).toContain(`${id}  Alice (engineer) [alice] asks for read access to prod-orders for 1h`);
    expect(c.out.join('\n')).toContain('Approving needs a passkey or a one-time code');

    // As JSON (dave, sre-leads), with whether approving needs a step-up.
    const d = io();
    expect(await runCli(as('dave-t', 'approvals', '--json'), d.io), d.err.join('\n')).toBe(0);
    const listed = JSON.parse(d.out[0]!);
    expect(listed).toEqual([expect.objectContaining({ id, requester: 'alice', resourceId: 'prod-orders', durationSeconds: 3600, reason: 'fix stuck orders', approvalStepUp: { required: true, methods: ['webauthn', 'totp'] } })]);

    // Errors in words: alice cannot decide her own request.
    const own = io();
    expect(await runCli(as('alice-t', 'approve', id), own.io)).toBe(1);
    expect(own.err.join('\n')).toBe('You cannot decide your own request.\nSomeone in an approving group has to; you can only cancel it.');
  }, 60_000);

  it('bob approves a step-up-gated request with --code; without a terminal and no --code, or with a wrong code, it says what to do', async () => {
    const id = await aliceRequestsProduction('reindex orders');

    const noTerminal = io();
    expect(await runCli(as('bob-t', 'approve', id), noTerminal.io)).toBe(2);
    expect(noTerminal.err.join('\n')).toMatch(/^Approving this request needs a one-time code from your authenticator app, and there is no terminal to ask for it on\.\nRun the command again with --code 123456/);

    const wrong = io();
    expect(await runCli(as('bob-t', 'approve', id, '--code', await authenticators.bob!.wrongCode()), wrong.io)).toBe(1);
    expect(wrong.err.join('\n')).toMatch(/^That code is not right: 4 attempts left\.\nUse the newest code/);
    const wrongJson = io();
    expect(await runCli(as('bob-t', 'approve', id, '--code', await authenticators.bob!.wrongCode(), '--json'), wrongJson.io)).toBe(1);
    expect(JSON.parse(wrongJson.err[0]!).error).toMatchObject({ code: 'stepup_invalid', status: 403, attemptsLeft: 3, message: 'That code is not right: 3 attempts left.' });

    const ok = io();
    expect(await runCli(as('bob-t', 'approve', id, '--comment', 'looked at the plan', '--code', await authenticators.bob!.nextCode()), ok.io), ok.err.join('\n')).toBe(0);
    expect(ok.out).toEqual([`Your approval of Alice (engineer)'s read access to prod-orders (${id}) is recorded; it still needs 1 more from sre-leads.`]);

    // Approved by bob, it no longer waits for him (the first one still does); dave (the other group) denies it.
    const inbox = io();
    expect(await runCli(as('bob-t', 'approvals', '--json'), inbox.io)).toBe(0);
    expect(JSON.parse(inbox.out[0]!).map((r: { id: string }) => r.id)).not.toContain(id);
    const denied = io();
    expect(await runCli(as('dave-t', 'deny', id, '--reason', 'not during the freeze', '--json'), denied.io), denied.err.join('\n')).toBe(0);
    expect(JSON.parse(denied.out[0]!).request).toMatchObject({ id, state: 'denied', decisionReason: 'not during the freeze' });
  }, 90_000);

  it('at a terminal, approve asks for the code, and again after a wrong one while attempts are left', async () => {
    const id = waiting!;
    const bob = authenticators.bob!;
    const r = io([await bob.wrongCode(), 'abc', await bob.nextCode()]);
    expect(await runCli(as('bob-t', 'approve', id, '--json'), r.io), r.err.join('\n')).toBe(0);
    expect(r.asked).toEqual(['Code: ', 'Code: ', 'Code: ']);
    expect(r.err).toEqual([
      `Approve alice's read access to prod-orders: confirm it is you with the code from your authenticator app.`,
      'That code is not right: 4 attempts left. Use the newest code from your authenticator app (check its clock), and try again.',
      'The code is the 6 digits your authenticator app shows.',
    ]);
    expect(JSON.parse(r.out[0]!).request).toMatchObject({ id, state: 'pending_approval', approvals: [expect.objectContaining({ approver: 'bob', group: 'dba' })] });
  }, 90_000);
});
