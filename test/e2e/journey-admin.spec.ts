// The admin console on the real stack (issue #25): alice holds staging access with a real `psql` session open through
// her tunnel; carol (admin) finds the grant under Admin → Live access with its reason and time left, revokes it with a
// reason, and alice's psql session is cut within a deadline's budget. Then the audit tab: filtered to the revoke,
// newest first, exported as CSV to a file, and the chain verified on demand; the policy versions the server recorded. alice, not an admin, sees no Admin section.
import { readFile } from 'node:fs/promises';
import { expect, goTo, liveGrantId, livePsql, realStackForFile, shot, test } from './fixtures/stack';

const run = realStackForFile();

test('admin revokes from the console: the grantee\'s live psql session is cut; the audit shows, exports and verifies it; the recorded policy versions show', async () => {
  const info = test.info();
  const alice = await run.j.open('alice', { signIn: 'direct' });
  await expect(alice.page.getByText('Signed in as alice@example.com')).toBeVisible();
  // Not an admin: no Admin section.
  await expect(alice.page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'History' })).toBeVisible();
  await expect(alice.page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Admin' })).toHaveCount(0);

  await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'check signups', connect: true });
  const grantId = await liveGrantId(alice.agent, 'staging-users');
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  const session = livePsql(uri);
  try {
    session.query('select count(*) from users;');
    await expect.poll(session.out, { timeout: 15_000 }).toContain('25');

    const carol = await run.j.open('carol', { signIn: 'direct' });
    await goTo(carol.page, 'Admin');
    const card = carol.page.locator('li.card', { hasText: 'check signups' });
    await expect(card).toContainText(/^Alice .*→ staging-users · read/);
    await expect(card.getByRole('timer')).toHaveText(/^(1h 59m|2h 00m)$/);
    await expect(card).toContainText('policy (no approval needed)');
    await shot(carol.page, '01-live', info);

    await card.getByRole('button', { name: /^Revoke / }).click();
    const dialog = carol.page.getByRole('dialog', { name: /^Revoke .*alice.*staging/i });
    // A reason is required.
    await dialog.getByRole('button', { name: 'Revoke now' }).click();
    await expect(dialog.getByRole('alert')).toContainText('Say why');
    await dialog.getByLabel('Reason (required, audited)').fill('laptop reported stolen');
    const revokedAt = Date.now();
    await dialog.getByRole('button', { name: 'Revoke now' }).click();
    await expect(carol.page.getByText('Access revoked', { exact: true })).toBeVisible();

    // The session alice had open is cut: the next statement finds no connection, and psql gives up.
    session.query('select 1;');
    const code = await Promise.race([session.exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), 10_000))]);
    expect(code, session.out()).not.toBe('alive');
    expect(code).not.toBe(0);
    expect(session.out()).toMatch(/terminat|closed the connection|connection to server was lost|server closed/i);
    expect(Date.now() - revokedAt).toBeLessThan(10_000);
    await expect(carol.page.locator('li.card', { hasText: 'laptop reported stolen' })).toHaveCount(0);
    await expect.poll(() => alice.agent.state().grants.find((g) => g.grant.id === grantId)?.grant.state, { timeout: 10_000 }).toBe('revoked');
    await shot(carol.page, '02-revoked', info);

    // The audit: newest first, filtered to revokes, exported, verified.
    await carol.page.getByRole('button', { name: 'Audit', exact: true }).click();
    await carol.page.getByLabel('Action').fill('grant.revoked');
    await carol.page.getByRole('button', { name: 'Apply' }).click();
    const table = carol.page.getByRole('table');
    await expect(table.getByRole('row').nth(1)).toContainText('laptop reported stolen');
    await expect(table.getByRole('row').nth(1)).toContainText('carol');
    await carol.page.getByRole('button', { name: 'Export CSV' }).click();
    const saved = carol.page.getByText(/^Saved to \//);
    await expect(saved).toBeVisible();
    const path = (await saved.textContent())!.replace(/^Saved to /, '');
    const csv = await readFile(path, 'utf8');
    expect(csv.split('\n')[0]).toBe('seq,at,actor,action,subject,requestId,grantId,resourceId,reason,policyVersion,risk,detail,prevHash,hash');
    expect(csv).toMatch(new RegExp(`,carol,grant\\.revoked,alice,[^,]*,${grantId},staging-users,laptop reported stolen,`));

    await carol.page.getByRole('button', { name: 'Verify now' }).click();
    await expect(carol.page.getByRole('status', { name: 'Audit chain' })).toContainText(/Chain intact: [\d,]+ entries/, { timeout: 30_000 });
    await shot(carol.page, '03-audit', info);

    // Policy versions: the config's policies as the server recorded them at start, each version 1 and current, with
    // its diff from nothing (every line added).
    await carol.page.getByRole('button', { name: 'Policy versions' }).click();
    const staging = carol.page.getByRole('listitem', { name: 'staging-self-service version 1' });
    await expect(staging).toContainText('Version 1 current');
    await expect(staging.locator('dd code')).toHaveText(/^\S{16,}$/);
    await expect(staging.locator('pre')).toContainText('+++ policies/staging-self-service');
    await expect(carol.page.getByRole('heading', { level: 3, name: 'production-db' })).toBeVisible();
    await shot(carol.page, '04-policy-versions', info);
  } finally {
    session.child.kill();
  }
});
