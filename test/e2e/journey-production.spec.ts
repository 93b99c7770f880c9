// The production journey on the real stack, through the UI in Chromium: alice signs in on her page, enrolls a passkey
// (CDP virtual authenticator), asks for write on Orders (production) and verifies with it; bob (dba) and dave
// (sre-leads) each approve from their Approvals view, verifying with a one-time code; alice's tunnel opens with a
// running countdown; the psql command copied to the browser's clipboard runs a query as pasted, with no password
// typed; a password reveal is on the audit record; "End now" closes the tunnel and wipes the credentials; the
// audit trail (read as carol, an admin) shows every step and its hash chain is valid.
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { approveWithCode, auditAs, connect, enrollPasskey, enrollTotp, expect, goTo, liveGrantId, psql, realStackForFile, shot, signInThroughUi, test, verifyChain, virtualAuthenticator, keychainSecretOf } from './fixtures/stack';

/** Run a command line as a user pastes it into a terminal (bash), with a timeout of its own. */
async function shell(line: string): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', ['-c', line], { timeout: 15_000 });
  return stdout.trim();
}

const run = realStackForFile();

test('production: request with passkey step-up → two approvals with codes → tunnel, countdown, URI, query → end now → audit chain valid', async () => {
  test.setTimeout(120_000);
  const info = test.info();
  const ORDERS = 'Orders (production)';

  // alice, on the web host whose origin the server accepts for passkeys.
  const alice = await run.j.open('alice', { webauthnOrigin: true, signIn: 'ui' });
  await virtualAuthenticator(alice.page);
  await shot(alice.page, '01-alice-signed-out', info);
  await signInThroughUi(alice);
  await expect(alice.page.getByText('Signed in as alice@example.com')).toBeVisible();
  await shot(alice.page, '02-alice-signed-in', info);

  await enrollPasskey(alice.page, 'Alice laptop');
  await shot(alice.page, '03-alice-passkey-enrolled', info);

  // The approvers set up an authenticator app in Settings (their pages are on other origins: codes, not passkeys).
  const [bob, dave] = [await run.j.open('bob', { signIn: 'direct' }), await run.j.open('dave', { signIn: 'direct' })];
  const bobSecret = await enrollTotp(bob.page);
  const daveSecret = await enrollTotp(dave.page);

  // alice asks.
  await goTo(alice.page, 'Request access');
  await alice.page.getByRole('button', { name: ORDERS }).click();
  const form = alice.page.getByRole('dialog', { name: `Request access to ${ORDERS}` });
  await expect(form).toContainText('needs approval from dba and sre-leads');
  await form.getByLabel('Reason (required)').fill('INC-4512 fix stuck orders');
  await form.getByLabel('Ticket').fill('INC-4512');
  await form.getByLabel('Access level').selectOption('write');
  await expect(form.getByRole('button', { name: '1h', pressed: true })).toBeVisible();
  await shot(alice.page, '04-alice-request-form', info);
  await form.getByRole('button', { name: 'Verify and ask dba and sre-leads' }).click();

  const stepUp = alice.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText(`Request write access to ${ORDERS} for 1h`);
  await shot(alice.page, '05-alice-stepup', info);
  await stepUp.getByTestId('stepup-passkey').click();
  await expect(stepUp).toBeHidden();
  await expect(alice.page.getByRole('heading', { name: 'Waiting', exact: true })).toBeVisible();
  await expect(alice.page.getByText('0 of 2 approvals — waiting for dba and sre-leads')).toBeVisible();
  await shot(alice.page, '06-alice-waiting', info);

  // bob is asked (the notification model's "Approval asked", shown in his window) and sees who, what, why and the
  // risk in his Approvals view; he approves with a code.
  await expect(bob.page.getByText(/wants write on Orders \(production\) for 1h — INC-4512 fix stuck orders/)).toBeVisible();
  await goTo(bob.page, 'Approvals');
  const card = bob.page.locator('li.approval', { hasText: ORDERS });
  await expect(card).toContainText('“INC-4512 fix stuck orders”');
  await expect(card).toContainText('INC-4512');
  await expect(card).toContainText('0 of 2 approvals');
  await shot(bob.page, '07-bob-approvals', info);
  await approveWithCode(bob.page, ORDERS, bobSecret, info, '08-bob');
  await expect(bob.page.getByText('Nobody is waiting for you.')).toBeVisible();
  await expect(alice.page.getByText('1 of 2 approvals — waiting for sre-leads')).toBeVisible();
  await shot(alice.page, '09-alice-one-approval', info);

  // dave's is the second approval: alice's access becomes active and her tunnel opens.
  await approveWithCode(dave.page, ORDERS, daveSecret, info, '10-dave');
  const grantId = await liveGrantId(alice.agent, 'prod-orders');
  const tunnelPort = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.tunnel!.port;
  // The "approved" notification says where to connect.
  await expect(alice.page.getByText(`${ORDERS} is ready — 127.0.0.1:${tunnelPort}, 1h`)).toBeVisible();
  await goTo(alice.page, 'Active');
  const grantCard = alice.page.locator('li.grant', { hasText: ORDERS });
  await expect(grantCard.getByRole('heading')).toHaveText(`${ORDERS} · write`);
  const timer = grantCard.getByRole('timer');
  await expect(timer).toHaveText(/^(59m|1h 00m)$/);
  await expect(grantCard).toContainText(/127\.0\.0\.1:\d+/);
  await shot(alice.page, '11-alice-active', info);

  // Copy the psql command → the browser's clipboard holds it, with no password in it; pasted into a shell as it is,
  // it runs a query through the tunnel (libpq reads the password from the grant's 0600 passfile).
  await alice.context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await alice.page.getByRole('button', { name: `Copy psql command for ${ORDERS}` }).click();
  await expect(alice.page.getByText('psql command copied')).toBeVisible();
  const command = await alice.page.evaluate(() => navigator.clipboard.readText());
  const port = Number(/127\.0\.0\.1:(\d+)/.exec((await grantCard.textContent()) ?? '')![1]);
  expect(command).toMatch(new RegExp(`^psql 'host=127\\.0\\.0\\.1 port=${port} dbname=orders user=\\S+ passfile=\\S+'$`));
  const { dbPassword } = JSON.parse((await keychainSecretOf(alice.keychain, grantId))!);
  expect(command).not.toContain(dbPassword);
  expect(await shell(`${command} -At -c "select count(*) from orders where status = 'stuck'"`)).toBe('7');
  // write means write.
  expect((await shell(`${command} -At -c "update orders set status = 'shipped' where id = 7 returning id"`)).split('\n')[0]).toBe('7');
  // For GUI clients: the password on an explicit reveal, which the server records first.
  await alice.page.getByRole('button', { name: `Reveal the password for ${ORDERS}` }).click();
  await expect(alice.page.getByLabel(`Password for ${ORDERS}`)).toHaveText(dbPassword);
  const uri = `postgres://${encodeURIComponent(alice.agent.state().grants.find((g) => g.grant.id === grantId)!.tunnel!.user!)}:${encodeURIComponent(dbPassword)}@127.0.0.1:${port}/orders`;
  expect(await psql(uri, 'select 1')).toBe('1');
  expect(await new KeytarSecretStore(alice.keychain).list()).toContainEqual(expect.stringContaining(grantId));
  await shot(alice.page, '12-alice-uri-copied', info);

  // End now: the tunnel closes, the credentials are wiped.
  await alice.page.getByRole('button', { name: `End access to ${ORDERS} now` }).click();
  await alice.page.getByRole('dialog', { name: `End access to ${ORDERS} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(alice.page.getByText('No active access.')).toBeVisible();
  await expect(alice.page.getByText(/Ended by you.*tunnel closed, credentials wiped/)).toBeVisible();
  await shot(alice.page, '13-alice-ended', info);
  await expect(connect(uri)).rejects.toThrow(/ECONNREFUSED|terminat|closed|ECONNRESET/i);
  // The same pasted command fails now: no tunnel, and the passfile is gone with the grant.
  await expect(shell(`${command} -At -c 'select 1'`)).rejects.toThrow();
  expect(existsSync(/passfile=(\S+)'/.exec(command)![1]!)).toBe(false);
  expect((await new KeytarSecretStore(alice.keychain).list()).filter((a) => a.includes(grantId))).toEqual([]);

  // The audit trail, as carol (admin): every step of this request and grant, in order; the chain is valid.
  const requestId = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const entries = (await auditAs(run.stack, 'carol')).filter((e) => e.requestId === requestId || e.grantId === grantId);
  const steps = entries.map((e) => `${e.actor}:${e.action}`);
  info.annotations.push({ type: 'audit', description: steps.join(' → ') });
  // The SSH session through the bastion is on the record too: opened while the grant was active, and closed (or
  // killed) once it ended — the companion's report races the revocation's record, so it is checked apart.
  const session = steps.filter((s) => s.includes(':bastion.session.'));
  expect(session).toEqual(['bastion:main:bastion.session.opened', expect.stringMatching(/^bastion:main:bastion\.session\.(closed|killed)$/)]);
  expect(steps.indexOf(session[0]!)).toBeGreaterThan(steps.indexOf('system:grant.activated'));
  expect(steps.indexOf(session[1]!)).toBeGreaterThan(steps.indexOf('alice:grant.released'));
  expect(steps.filter((s) => !s.includes(':bastion.session.'))).toEqual([
    'alice:request.created',
    'alice:request.stepup_passed',
    'bob:request.approval_added',
    'dave:request.approval_added',
    'dave:request.approved',
    'alice:request.activated',
    'system:grant.activated',
    'alice:grant.password_revealed',
    'alice:grant.released',
    'system:grant.credentials_revoked',
  ]);
  expect(entries.find((e) => e.action === 'request.stepup_passed')!.detail).toMatchObject({ method: 'webauthn' });
  expect(entries.filter((e) => e.action === 'request.approval_added').map((e) => e.detail)).toEqual([
    expect.objectContaining({ group: 'dba', stepUp: 'totp' }), expect.objectContaining({ group: 'sre-leads', stepUp: 'totp' }),
  ]);
  expect(entries.find((e) => e.action === 'request.created')!.reason).toBe('INC-4512 fix stuck orders');
  const verified = await verifyChain(run.stack);
  expect(verified).toMatchObject({ ok: true });
  // alice's History shows her own trail.
  await goTo(alice.page, 'History');
  await expect(alice.page.getByText('Your audit trail')).toBeVisible();
  await shot(alice.page, '14-alice-history', info);
});
