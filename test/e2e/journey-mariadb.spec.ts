// A MariaDB grant on the real stack through the UI in Chromium: alice asks for the MariaDB resource, confirms it is
// her with a passkey (the policy always asks), is connected at once (low risk), copies the `mariadb` command from her
// Active card and it runs as pasted into a shell with no password; a session she left open is cut when she ends the
// access, and the grant's account is gone from the database itself.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { auditAs, enrollPasskey, expect, goTo, liveGrantId, realStackForFile, shot, test, verifyChain, virtualAuthenticator } from './fixtures/stack';

const run = realStackForFile({ mariadb: true });

/** A line as pasted into a shell (never execFileSync: a hung tunnel would block the worker). */
async function shell(line: string): Promise<string> {
  const { stdout } = await promisify(execFile)('/bin/sh', ['-c', line], { encoding: 'utf8', timeout: 15_000 });
  return stdout.trim();
}

test('MariaDB: request → passkey step-up → connected → copied mariadb command returns rows → end now cuts the live session and drops the account', async ({ browserName }) => {
  test.setTimeout(120_000);
  expect(browserName).toBe('chromium');
  const info = test.info();
  const SHOP = 'Shop (staging, MariaDB)';
  const alice = await run.j.open('alice', { webauthnOrigin: true, signIn: 'direct' });
  await virtualAuthenticator(alice.page);
  await enrollPasskey(alice.page, 'Alice laptop');

  await goTo(alice.page, 'Request access');
  const row = alice.page.locator('li.resource', { hasText: SHOP });
  await expect(row).toContainText('step-up');
  await alice.page.getByRole('button', { name: SHOP }).click();
  const form = alice.page.getByRole('dialog', { name: `Request access to ${SHOP}` });
  await expect(form.getByRole('button', { name: '1h', pressed: true })).toBeVisible();
  await shot(alice.page, '01-mariadb-form', info);
  await form.getByRole('button', { name: 'Verify and connect' }).click();
  const stepUp = alice.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText(SHOP);
  await stepUp.getByTestId('stepup-passkey').click();
  await expect(stepUp).toBeHidden();
  await expect(alice.page.getByText(`${SHOP} is ready`)).toBeVisible();

  const card = alice.page.locator('li.grant', { hasText: SHOP });
  await expect(card.getByRole('button', { name: `Open ${SHOP} in mariadb` })).toBeVisible();
  await alice.context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await card.getByRole('button', { name: `Copy mariadb command for ${SHOP}` }).click();
  await expect(alice.page.getByText('mariadb command copied')).toBeVisible();
  await shot(alice.page, '02-mariadb-active', info);
  const command = await alice.page.evaluate(() => navigator.clipboard.readText());
  expect(command).toMatch(/^mariadb --defaults-file='[^']+\/my\.cnf'$/);
  // Exactly what was copied, pasted into a shell: rows through the tunnel, no password asked.
  expect(await shell(`${command} -N -B -e 'SELECT name FROM products ORDER BY id LIMIT 3'`)).toBe('notebook\npencil\nlamp');

  // A session left open through the tunnel, with the grant's own account (its password from the GUI URI).
  const grantId = await liveGrantId(alice.agent, 'staging-shop');
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  const url = new URL(uri);
  expect(url.protocol).toBe('mysql:');
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const live = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user, password, database: 'shop' });
  live.on('error', () => undefined); // cut at the end: expected
  const sleeping = live.query('SELECT SLEEP(60)').then(() => 'finished', () => 'cut');

  await alice.page.getByRole('button', { name: `End access to ${SHOP} now` }).click();
  await alice.page.getByRole('dialog', { name: `End access to ${SHOP} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(alice.page.getByText(/Ended by you.*tunnel closed, credentials wiped/)).toBeVisible();
  expect(await sleeping).toBe('cut');
  await expect(shell(`${command} -N -B -e 'SELECT 1'`)).rejects.toThrow();
  // Dead on the database too: the server locked, killed and dropped the account.
  const db = run.stack.mariadb!;
  await expect.poll(async () => (await db.query('SELECT User FROM mysql.user WHERE User = ?', [user])).length, { timeout: 10_000 }).toBe(0);
  expect(await db.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user])).toEqual([]);
  await expect(mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password })).rejects.toThrow(/Access denied/);

  const requestId = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const steps = (await auditAs(run.stack, 'carol', `&requestId=${requestId}`)).map((e) => e.action);
  expect(steps).toEqual(expect.arrayContaining(['request.created', 'grant.activated', 'grant.credentials_revoked']));
  expect(await verifyChain(run.stack)).toMatchObject({ ok: true });
  await shot(alice.page, '03-mariadb-ended', info);
});
