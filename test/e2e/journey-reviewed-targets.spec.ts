// The MariaDB database and the SSH host under a policy a colleague decides (issue #23), on the real stack through the
// UI in Chromium, each journey to its end: alice asks with a reason and verifies with her passkey; bob (dba) sees it
// in his Approvals and approves with a one-time code; alice's card is ready and the command copied from it does the
// work in a shell; a session she keeps open is cut when the 20-second grant runs out — nobody presses "End now" —
// and afterwards the command is refused, the grant's files are gone and, for MariaDB, the account is gone from the
// database itself. The audit trail shows every step and its hash chain verifies.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { REVIEWED_GRANT_SECONDS, reviewedTargets } from '../harness/reviewed-targets';
import {
  approveWithCode, auditAs, enrollPasskey, enrollTotp, expect, goTo, liveGrantId, realStackForFile, shot, test, verifyChain,
  virtualAuthenticator, type UiUser,
} from './fixtures/stack';

const run = realStackForFile({ mariadb: true, editConfig: reviewedTargets });

/** How late after the grant's deadline a live session may still be cut (the server ends it on a timer; under load). */
const CUT_WITHIN_MS = 3_000;
/**
 * How early it may be cut: the agent closes the tunnel by its own estimate of the server's clock, read from HTTP Date
 * headers (whole seconds), which it rounds to end up to a second early rather than ever late (agent/core/deadlines.ts).
 */
const CUT_EARLY_MS = 2_000;

/** A line as pasted into a shell (never execFileSync: a hung tunnel would block the worker). */
async function shell(line: string): Promise<string> {
  const { stdout } = await promisify(execFile)('/bin/sh', ['-c', line], { encoding: 'utf8', timeout: 15_000 });
  return stdout.trim();
}

// One alice (the only agent on the passkey origin) and one bob for both journeys, set up on first use.
let people: { alice: UiUser; bob: UiUser; bobSecret: string; bobStep?: number } | undefined;

async function alicesAndBobs(): Promise<NonNullable<typeof people>> {
  if (people) return people;
  const alice = await run.j.open('alice', { webauthnOrigin: true, signIn: 'direct' });
  await virtualAuthenticator(alice.page);
  await enrollPasskey(alice.page, 'Alice laptop');
  await alice.context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const bob = await run.j.open('bob', { signIn: 'direct' });
  people = { alice, bob, bobSecret: await enrollTotp(bob.page) };
  return people;
}

/**
 * alice asks for `name` with `reason`, verifies with her passkey and waits; bob sees who, what and why in his
 * Approvals and approves with a code; alice's card becomes ready. Returns the live grant's id.
 */
async function askAndGetApproved(name: string, resourceId: string, reason: string, tag: string): Promise<string> {
  const info = test.info();
  const p = await alicesAndBobs();
  const { alice, bob } = p;
  await goTo(alice.page, 'Request access');
  await expect(alice.page.locator('li.resource', { hasText: name })).toContainText('step-up');
  await alice.page.getByRole('button', { name, exact: true }).click();
  const form = alice.page.getByRole('dialog', { name: `Request access to ${name}` });
  await expect(form).toContainText('needs approval from dba');
  await form.getByLabel('Reason (required)').fill(reason);
  await shot(alice.page, `${tag}-01-alice-form`, info);
  await form.getByRole('button', { name: 'Verify and ask dba' }).click();
  const stepUp = alice.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText(name);
  await stepUp.getByTestId('stepup-passkey').click();
  await expect(stepUp).toBeHidden();
  await expect(alice.page.getByRole('heading', { name: 'Waiting', exact: true })).toBeVisible();
  await expect(alice.page.getByText('0 of 1 approval — waiting for dba')).toBeVisible();
  await shot(alice.page, `${tag}-02-alice-waiting`, info);

  await goTo(bob.page, 'Approvals');
  const card = bob.page.locator('li.approval', { hasText: name });
  await expect(card).toContainText(`“${reason}”`);
  await expect(card).toContainText('0 of 1 approval');
  await shot(bob.page, `${tag}-03-bob-approvals`, info);
  p.bobStep = await approveWithCode(bob.page, name, p.bobSecret, info, `${tag}-04-bob`, p.bobStep);
  await expect(bob.page.getByText('Nobody is waiting for you.')).toBeVisible();

  const grantId = await liveGrantId(alice.agent, resourceId);
  await expect(alice.page.getByText(new RegExp(`^${name.replace(/[()]/g, '\\$&')} is ready`))).toBeVisible();
  await goTo(alice.page, 'Active');
  await expect(alice.page.locator('li.grant', { hasText: name }).getByRole('timer')).toHaveText(/^0:[0-2]\d$/);
  return grantId;
}

/** The command on `name`'s card, copied to the browser's clipboard as a user would. */
async function copiedCommand(alice: UiUser, name: string, client: string): Promise<string> {
  await alice.page.locator('li.grant', { hasText: name }).getByRole('button', { name: `Copy ${client} command for ${name}` }).click();
  await expect(alice.page.getByText(`${client} command copied`)).toBeVisible();
  return alice.page.evaluate(() => navigator.clipboard.readText());
}

/** The line about `name`'s access that ended, in the Active view. */
async function expectTimeRanOut(alice: UiUser, name: string): Promise<void> {
  const ended = alice.page.locator('li', { has: alice.page.locator('strong', { hasText: `${name} · ` }) });
  await expect(ended).toContainText(/Time ran out.* — tunnel closed, credentials wiped/);
}

function endsAtOf(alice: UiUser, grantId: string): number {
  return Date.parse(alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.endsAt);
}

/** This request's and grant's audit steps as `actor:action`, the sessions' rows apart (their reports race the rest). */
async function auditSteps(grantId: string, alice: UiUser): Promise<{ steps: string[]; sessions: string[] }> {
  const requestId = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const entries = (await auditAs(run.stack, 'carol')).filter((e) => e.requestId === requestId || e.grantId === grantId);
  const all = entries.map((e) => `${e.actor}:${e.action}`);
  test.info().annotations.push({ type: 'audit', description: all.join(' → ') });
  const isSession = (s: string) => /:(bastion|host)\.session\./.test(s);
  return { steps: all.filter((s) => !isSession(s)), sessions: all.filter(isSession) };
}

test('MariaDB, reviewed: reason + passkey → bob approves with a code → copied mariadb command returns rows → the deadline cuts the live session and the account is gone', async () => {
  test.setTimeout(180_000);
  const info = test.info();
  const SHOP = 'Shop (staging, MariaDB)';
  const grantId = await askAndGetApproved(SHOP, 'staging-shop', 'INC-7001 check the price import', 'mariadb');
  const { alice } = people!;
  const card = alice.page.locator('li.grant', { hasText: SHOP });
  await shot(alice.page, 'mariadb-05-alice-active', info);

  const command = await copiedCommand(alice, SHOP, 'mariadb');
  expect(command).toMatch(/^mariadb --defaults-file='[^']+\/my\.cnf'$/);
  expect(await shell(`${command} -N -B -e 'SELECT name FROM products ORDER BY id LIMIT 3'`)).toBe('notebook\npencil\nlamp');

  // A session a GUI client keeps open, with what the card shows and the (audited) password reveal.
  const field = async (term: string) => (await card.locator('dt', { hasText: new RegExp(`^${term}$`) }).locator('xpath=following-sibling::dd[1]').textContent())!;
  await card.getByRole('button', { name: `Reveal the password for ${SHOP}` }).click();
  // Exact: a loose match is also the Reveal button ("…the password for…"), still there until the server has recorded it.
  const shown = card.getByLabel(`Password for ${SHOP}`, { exact: true });
  await expect(shown).toHaveText(/^\S{20,}$/);
  const password = (await shown.textContent())!;
  const user = await field('User');
  const live = await mysql.createConnection({ host: await field('Host'), port: Number(await field('Port')), user, password, database: 'shop' });
  live.on('error', () => undefined); // cut at the deadline: expected
  const sleeping = live.query('SELECT SLEEP(60)').then(() => 'finished', () => 'cut');
  const endsAt = endsAtOf(alice, grantId);
  expect(endsAt - Date.now()).toBeGreaterThan(0); // still live when the session started: the cut below is the deadline's
  await shot(alice.page, 'mariadb-06-alice-session-open', info);

  // Nobody ends it: the deadline does.
  expect(await sleeping).toBe('cut');
  const cutAt = Date.now();
  info.annotations.push({ type: 'cut', description: `${cutAt - endsAt} ms after the deadline` });
  expect(cutAt - endsAt).toBeGreaterThan(-CUT_EARLY_MS);
  expect(cutAt - endsAt).toBeLessThan(CUT_WITHIN_MS);
  await expectTimeRanOut(alice, SHOP);
  await expect(alice.page.getByText(`${SHOP} access ended — tunnel closed, credentials wiped`)).toBeVisible();
  await shot(alice.page, 'mariadb-07-alice-time-ran-out', info);

  // Dead everywhere: the copied command, its option file, the account and its password on the database itself.
  await expect(shell(`${command} -N -B -e 'SELECT 1'`)).rejects.toThrow();
  expect(existsSync(/--defaults-file='([^']+)'/.exec(command)![1]!)).toBe(false);
  const db = run.stack.mariadb!;
  await expect.poll(async () => (await db.query('SELECT User FROM mysql.user WHERE User = ?', [user])).length, { timeout: 10_000 }).toBe(0);
  expect(await db.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).toEqual([]);
  await expect(mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password })).rejects.toThrow(/Access denied/);

  await expect.poll(async () => (await auditSteps(grantId, alice)).steps, { timeout: 10_000 }).toContain('system:grant.credentials_revoked');
  // The tunnel's SSH session through the bastion: opened, and closed or killed at the end.
  await expect.poll(async () => (await auditSteps(grantId, alice)).sessions, { timeout: 10_000 })
    .toEqual(['bastion:main:bastion.session.opened', expect.stringMatching(/^bastion:main:bastion\.session\.(closed|killed)$/)]);
  const { steps } = await auditSteps(grantId, alice);
  expect(steps).toEqual([
    'alice:request.created',
    'alice:request.stepup_passed',
    'bob:request.approval_added',
    'bob:request.approved',
    'alice:request.activated',
    'system:grant.activated',
    'alice:grant.password_revealed',
    'system:grant.ended',
    'system:grant.credentials_revoked',
  ]);
  const grantAudit = await auditAs(run.stack, 'carol', `&grantId=${grantId}`);
  expect(grantAudit.find((e) => e.action === 'grant.ended')).toMatchObject({ reason: 'deadline reached' });
  expect(await verifyChain(run.stack)).toMatchObject({ ok: true });
  await live.end().catch(() => undefined);
});

test(`SSH host, reviewed: reason + passkey → bob approves with a code → copied ssh command runs on the host → the ${REVIEWED_GRANT_SECONDS}s deadline cuts the live session and the command is refused`, async () => {
  test.setTimeout(180_000);
  const info = test.info();
  const WEB = 'Web host (staging)';
  const grantId = await askAndGetApproved(WEB, 'staging-web', 'INC-7002 read the nginx error log', 'ssh');
  const { alice } = people!;
  await shot(alice.page, 'ssh-05-alice-active', info);

  const command = await copiedCommand(alice, WEB, 'ssh');
  expect(command).toMatch(/^ssh -F \S+\/ssh_config stint-staging-web$/);
  expect(await shell(`${command} 'id -un'`)).toBe('stinttarget');

  // A live interactive session on the host, left open.
  const liveSession = spawn('/bin/sh', ['-c', `${command.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  liveSession.stdout.on('data', (d: Buffer) => { said += d.toString(); });
  const exited = new Promise<number>((resolve) => liveSession.once('exit', () => resolve(Date.now())));
  try {
    await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');
    const endsAt = endsAtOf(alice, grantId);
    expect(endsAt - Date.now()).toBeGreaterThan(0); // still live when the session started: the cut below is the deadline's
    await shot(alice.page, 'ssh-06-alice-session-open', info);

    // Nobody ends it: the deadline does.
    const cutAt = await exited;
    info.annotations.push({ type: 'cut', description: `${cutAt - endsAt} ms after the deadline` });
    expect(cutAt - endsAt).toBeGreaterThan(-CUT_EARLY_MS);
    expect(cutAt - endsAt).toBeLessThan(CUT_WITHIN_MS);
  } finally {
    liveSession.kill();
  }
  await expectTimeRanOut(alice, WEB);
  await expect(alice.page.getByText(`${WEB} access ended — tunnel closed, credentials wiped`)).toBeVisible();
  await shot(alice.page, 'ssh-07-alice-time-ran-out', info);

  // The same command is refused, and the grant's ssh_config, key and known_hosts are gone with their directory.
  await expect(shell(`${command} true`)).rejects.toThrow();
  expect(existsSync(dirname(/^ssh -F (\S+)/.exec(command)![1]!))).toBe(false);

  // The audit trail: both sessions on the host with their login, and their end; the request's steps in order.
  await expect.poll(async () => (await auditAs(run.stack, 'carol', `&grantId=${grantId}`)).filter((e) => /^host\.session\.(killed|closed)$/.test(e.action)).length, { timeout: 10_000 }).toBe(2);
  const grantAudit = await auditAs(run.stack, 'carol', `&grantId=${grantId}`);
  expect(grantAudit.filter((e) => e.action === 'host.session.opened').map((e) => e.detail?.login)).toEqual(['stinttarget', 'stinttarget']);
  expect(grantAudit.find((e) => e.action === 'grant.ended')).toMatchObject({ reason: 'deadline reached' });
  await expect.poll(async () => (await auditSteps(grantId, alice)).steps, { timeout: 10_000 }).toContain('system:grant.credentials_revoked');
  expect((await auditSteps(grantId, alice)).steps).toEqual([
    'alice:request.created',
    'alice:request.stepup_passed',
    'bob:request.approval_added',
    'bob:request.approved',
    'alice:request.activated',
    'system:grant.activated',
    'system:grant.ended',
    'system:grant.credentials_revoked',
  ]);
  expect(await verifyChain(run.stack)).toMatchObject({ ok: true });
});
