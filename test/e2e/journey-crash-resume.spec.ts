// Issue #21 item 1 in the browser, on the real stack: Stint stops while alice's staging access is active (its keys
// are gone with it; the server is not told), and starts again on the same device. The Active view offers the grant —
// "Stint stopped while this access was active" — and Resume takes it back with new keys for the time left: a query
// runs through the new tunnel, and the password of the run that stopped logs in nowhere.
import { auditAs, expect, goTo, psql, realStackForFile, shot, test } from './fixtures/stack';

const run = realStackForFile();

test('Stint stopped mid-grant: on restart Active offers it, Resume takes it back, psql works and the old password does not', async () => {
  const info = test.info();
  const USERS = 'Users (staging)';
  const DEVICE = 'device-e2e-laptop';
  const first = await run.j.open('alice', { signIn: 'direct', deviceId: DEVICE });
  const created = await first.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds: 3600, reason: 'before the crash', connect: true });
  const grantId = created.connection!.grantId;
  const oldUri = new URL((await first.agent.api.connectionUri({ grantId })).uri);
  expect(await psql(oldUri.href, 'select count(*) from users')).toBe('25');
  // Straight to PostgreSQL with the grant's role and password, as whoever copied them could.
  const copied = `postgres://${oldUri.username}:${oldUri.password}@127.0.0.1:${run.stack.pg.port}/users`;
  expect(await psql(copied, 'select 1')).toBe('1');

  // Stint stops: its tunnel and keys are gone, and nobody told the server.
  await first.context.close();
  await first.host.close();
  await first.agent.dispose();

  const second = await run.j.open('alice', { signIn: 'direct', deviceId: DEVICE });
  await goTo(second.page, 'Active');
  const card = second.page.locator('li.grant', { hasText: USERS });
  await expect(card).toContainText('Stint stopped while this access was active.');
  await expect(card.getByRole('timer')).toHaveText(/^(59m|1h 00m)$/);
  await expect(card.getByRole('button', { name: `Connect to ${USERS}` })).toHaveCount(0);
  await shot(second.page, '01-left-from-before', info);

  await card.getByRole('button', { name: `Resume ${USERS}` }).click();
  await expect(second.page.getByText(`${USERS} resumed`)).toBeVisible();
  await expect(card).not.toContainText('Stint stopped');
  await expect(card).toContainText(/127\.0\.0\.1:\d+/);
  await shot(second.page, '02-resumed', info);
  const { uri } = await second.agent.api.connectionUri({ grantId });
  expect(await psql(uri, 'select count(*) from users')).toBe('25');
  await expect(psql(copied, 'select 1')).rejects.toThrow(/password authentication failed/);
  expect((await auditAs(run.stack, 'carol', `&grantId=${grantId}`)).map((e) => `${e.actor}:${e.action}`)).toContain('alice:grant.rekeyed');

  await card.getByRole('button', { name: `End access to ${USERS} now` }).click();
  await second.page.getByRole('dialog', { name: `End access to ${USERS} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(second.page.getByText('Ended by you')).toBeVisible();
});
