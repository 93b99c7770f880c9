// The admin console at the server's own origin on the real stack (issue #25): carol, in a browser with no agent, opens
// <server>/admin, signs in on the dev IdP's pages, finds alice's live grant (alice has a real psql session open through
// her tunnel), revokes it with a reason, and alice's psql session is cut within a deadline's budget; the filtered audit
// is downloaded by the browser as CSV. alice, not an admin, is refused the console in words.
import { readFile } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from '@playwright/test';
import { expect, liveGrantId, livePsql, realStackForFile, shot, test } from './fixtures/stack';

const run = realStackForFile();
const contexts: BrowserContext[] = [];

test.afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
});

/** A fresh browser (no agent, no cookies) opening <server>/admin and signing in on the IdP's pages as `user`. */
async function openConsole(browser: Browser, user: string): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true });
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${run.stack.serverUrl}/admin`);
  await page.locator('input[name=login]').fill(user);
  await page.locator('input[name=password]').fill('anything');
  await page.locator('button[type=submit]').click();
  await page.getByRole('button', { name: /continue/i }).click();
  await expect(page).toHaveURL(`${run.stack.serverUrl}/admin/`);
  return page;
}

test('an admin without the agent revokes from /admin: the grantee\'s live psql session is cut; the audit downloads', async ({ browser }) => {
  test.setTimeout(120_000);
  const info = test.info();
  const alice = await run.j.open('alice', { signIn: 'direct' });
  await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'check signups', connect: true });
  const grantId = await liveGrantId(alice.agent, 'staging-users');
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  const session = livePsql(uri);
  try {
    session.query('select count(*) from users;');
    await expect.poll(session.out, { timeout: 15_000 }).toContain('25');

    const carol = await openConsole(browser, 'carol');
    await expect(carol.getByTestId('admin-who')).toContainText('Signed in as Carol (admin)');
    const card = carol.locator('li.card', { hasText: 'check signups' });
    await expect(card).toContainText(/^Alice .*→ staging-users · read/);
    await expect(card.getByRole('timer')).toHaveText(/^(1h 59m|2h 00m)$/);
    await expect(card).toContainText('policy (no approval needed)');
    await shot(carol, 'admin-origin-01-live', info);

    await card.getByRole('button', { name: /^Revoke / }).click();
    const dialog = carol.getByRole('dialog', { name: /^Revoke .*alice.*staging/i });
    await dialog.getByLabel('Reason (required, audited)').fill('laptop reported stolen');
    const revokedAt = Date.now();
    await dialog.getByRole('button', { name: 'Revoke now' }).click();
    await expect(carol.getByText('Access revoked', { exact: true })).toBeVisible();

    // The session alice had open is cut: the next statement finds no connection, and psql gives up.
    session.query('select 1;');
    const code = await Promise.race([session.exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), 10_000))]);
    expect(code, session.out()).not.toBe('alive');
    expect(code).not.toBe(0);
    expect(session.out()).toMatch(/terminat|closed the connection|connection to server was lost|server closed/i);
    expect(Date.now() - revokedAt).toBeLessThan(10_000);
    await expect(carol.locator('li.card', { hasText: 'check signups' })).toHaveCount(0);
    await expect.poll(() => alice.agent.state().grants.find((g) => g.grant.id === grantId)?.grant.state, { timeout: 10_000 }).toBe('revoked');

    // The audit, filtered to the revoke, downloaded by the browser.
    await carol.getByRole('button', { name: 'Audit', exact: true }).click();
    await carol.getByLabel('Action').fill('grant.revoked');
    await carol.getByRole('button', { name: 'Apply' }).click();
    await expect(carol.getByRole('table').getByRole('row').nth(1)).toContainText('laptop reported stolen');
    const download = carol.waitForEvent('download');
    await carol.getByRole('button', { name: 'Export CSV' }).click();
    const csv = await readFile((await (await download).path())!, 'utf8');
    expect(csv.split('\n')[0]).toBe('seq,at,actor,action,subject,requestId,grantId,resourceId,reason,policyVersion,risk,detail,prevHash,hash');
    expect(csv).toMatch(new RegExp(`,carol,grant\\.revoked,alice,[^,]*,${grantId},staging-users,laptop reported stolen,`));
    await expect(carol.getByText(/^Saved to your browser’s downloads/)).toBeVisible();
    await shot(carol, 'admin-origin-02-revoked', info);
  } finally {
    session.child.kill();
  }
});

test('a user who is not an administrator is refused the console at /admin', async ({ browser }) => {
  const alice = await openConsole(browser, 'alice');
  await expect(alice.getByRole('heading', { level: 1 })).toHaveText('Administrators only');
  await expect(alice.getByText(/You are signed in as alice@example\.com, who is not a Stint administrator/)).toBeVisible();
  await expect(alice.getByRole('button', { name: /^Revoke / })).toHaveCount(0);
});
