// The staging journey on the real stack: low risk, read only, auto-approved with no step-up — one click on
// "Connect now" and the tunnel is open; a query runs through it; the server's audit says it was approved by policy.
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { activeId, tabTo } from './fixtures/ui';
import { auditAs, expect, goTo, liveGrantId, psql, realStackForFile, shot, test, verifyChain } from './fixtures/stack';

const run = realStackForFile();

test('staging: read-only, auto-approved, no step-up → connected in one click → query through the tunnel', async () => {
  const info = test.info();
  const USERS = 'Users (staging)';
  const alice = await run.j.open('alice', { signIn: 'direct' });
  await expect(alice.page.getByText('Signed in as alice@example.com')).toBeVisible();
  await goTo(alice.page, 'Request access');
  const row = alice.page.locator('li.resource', { hasText: USERS });
  await expect(row).toContainText('instant');
  await expect(row).not.toContainText('step-up');
  await shot(alice.page, '01-resources', info);

  await alice.page.getByRole('button', { name: USERS }).click();
  const form = alice.page.getByRole('dialog', { name: `Request access to ${USERS}` });
  await expect(form.getByText('Access level: read')).toBeVisible();
  await expect(form.getByRole('button', { name: '2h', pressed: true })).toBeVisible(); // the policy default
  await shot(alice.page, '02-form', info);
  // The one click: no reason needed, no verification, nobody to ask.
  await form.getByRole('button', { name: 'Connect now' }).click();
  await expect(alice.page.getByRole('dialog', { name: 'Confirm it is you' })).toHaveCount(0);
  await expect(alice.page.getByText(`${USERS} is ready`)).toBeVisible();
  await expect(alice.page.getByRole('heading', { name: 'Active', exact: true })).toBeVisible();
  const card = alice.page.locator('li.grant', { hasText: USERS });
  await expect(card.getByRole('timer')).toHaveText(/^(1h 59m|2h 00m)$/);
  await expect(card).toContainText(/127\.0\.0\.1:\d+/);
  await shot(alice.page, '03-active', info);

  const grantId = await liveGrantId(alice.agent, 'staging-users');
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  expect(await psql(uri, 'select count(*) from users')).toBe('25');
  // read only: writing is refused by the database itself.
  await expect(psql(uri, "insert into users (email) values ('x@example.com')")).rejects.toThrow(/permission denied/);
  expect(await new KeytarSecretStore(alice.keychain).list()).toContainEqual(expect.stringContaining(grantId));

  const requestId = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const steps = (await auditAs(run.stack, 'carol', `&requestId=${requestId}`)).map((e) => `${e.actor}:${e.action}`);
  expect(steps.slice(0, 2)).toEqual(['alice:request.created', expect.stringMatching(/request\.(auto_)?approved$/)]);
  expect(steps.some((s) => /stepup/.test(s))).toBe(false);
  expect(await verifyChain(run.stack)).toMatchObject({ ok: true });

  // Early release from the UI: the tunnel closes, the keychain entry goes.
  await alice.page.getByRole('button', { name: `End access to ${USERS} now` }).click();
  await alice.page.getByRole('dialog', { name: `End access to ${USERS} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(alice.page.getByText(/Ended by you.*tunnel closed, credentials wiped/)).toBeVisible();
  await expect(psql(uri, 'select 1')).rejects.toThrow();
  expect((await new KeytarSecretStore(alice.keychain).list()).filter((a) => a.includes(grantId))).toEqual([]);
  await shot(alice.page, '04-released', info);
});

test('keyboard only on the real stack: find staging, fill the form, connect — then query', async () => {
  const info = test.info();
  const alice = await run.j.open('alice', { signIn: 'direct' });
  await goTo(alice.page, 'Request access');
  await alice.page.locator('body').click({ position: { x: 1, y: 1 } }); // start from the top of the page
  await tabTo(alice.page, 'resource-search');
  await alice.page.keyboard.type('users');
  await alice.page.keyboard.press('Tab');
  expect(await activeId(alice.page)).toBe('request-staging-users');
  await alice.page.keyboard.press('Enter');
  const form = alice.page.getByRole('dialog', { name: 'Request access to Users (staging)' });
  await expect(form).toBeVisible();
  expect(await activeId(alice.page)).toBe('request-reason');
  await alice.page.keyboard.type('check signups');
  await shot(alice.page, '01-keyboard-form', info);
  await alice.page.keyboard.press('Enter'); // Enter in a text field submits: "Connect now"
  await expect(alice.page.getByText('Users (staging) is ready')).toBeVisible();
  const grantId = await liveGrantId(alice.agent, 'staging-users');
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  expect(await psql(uri, 'select count(*) from users')).toBe('25');
  const requestId = alice.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const audit = await auditAs(run.stack, 'carol', `&requestId=${requestId}`);
  expect(audit.find((e) => e.action === 'request.created')).toMatchObject({ actor: 'alice', reason: 'check signups' });
  await shot(alice.page, '02-keyboard-connected', info);
  await alice.agent.api.release({ grantId });
});
