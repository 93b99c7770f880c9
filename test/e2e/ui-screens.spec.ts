// Screenshots of every main view in light and dark, saved as test artifacts (test-results/e2e/…/<view>-<scheme>.png),
// and a check that the two schemes really differ (the dark palette is applied, not just the light one twice).
import { ScriptedAgent, sampleResources } from './fixtures/scripted-agent';
import { expect, test } from './fixtures/ui';

const SCHEMES = ['light', 'dark'] as const;

function populatedAgent(): ScriptedAgent {
  const carol = { sub: 'carol', email: 'carol@example.com', name: 'Carol', groups: ['dba', 'approvers'], admin: false, approver: true };
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: carol }, resources: sampleResources() } });
  const orders = agent.grant({ resourceId: 'prod-orders', level: 'write' }, 42 * 60_000);
  const users = agent.grant({ resourceId: 'staging-users', level: 'read' }, 3 * 3600_000 + 10 * 60_000, 15501);
  const ended = agent.grant({ resourceId: 'staging-analytics', level: 'read', state: 'ended', endReason: 'deadline' }, 0, 15502);
  agent.setState({
    grants: [orders, users, { ...ended, tunnel: undefined }],
    requests: [
      agent.request({
        resourceId: 'prod-billing', requester: 'carol', requesterName: 'Carol', level: 'write', reason: 'BILL-88 refund batch',
        approvalsNeeded: [{ group: 'dba', count: 1, have: 1 }, { group: 'sre-leads', count: 1, have: 0 }],
      }),
      agent.request({ resourceId: 'staging-users', requester: 'carol', state: 'denied', decisionReason: 'use the read replica', reason: 'check signups' }),
    ],
    approvals: [
      agent.request({
        resourceId: 'prod-orders', requester: 'bob', requesterName: 'Bob', level: 'write', reason: 'INC-4512 fix stuck orders',
        ticket: 'INC-4512', risk: { score: 64, reasons: ['write on a high-sensitivity database', 'new device'] },
        approvalsNeeded: [{ group: 'dba', count: 1, have: 0 }],
      }),
    ],
  });
  agent.auditEntries.push(
    { seq: 1, at: new Date(Date.now() - 3600_000).toISOString(), actor: 'carol', subject: 'carol', action: 'request.created', resourceId: 'staging-users', reason: 'check signups', prevHash: '0'.repeat(64), hash: 'a'.repeat(64) },
    { seq: 2, at: new Date(Date.now() - 1800_000).toISOString(), actor: 'dave', subject: 'carol', action: 'request.denied', resourceId: 'staging-users', reason: 'use the read replica', prevHash: 'a'.repeat(64), hash: 'b'.repeat(64) },
  );
  return agent;
}

test('every main view, light and dark', async ({ page, openUi }) => {
  await openUi(populatedAgent(), '?view=active');
  await expect(page.getByRole('main').getByRole('timer').first()).toHaveText('42m');
  const nav = page.getByRole('navigation', { name: 'Sections' });
  const shoot = async (name: string) => {
    const colors: string[] = [];
    for (const colorScheme of SCHEMES) {
      await page.emulateMedia({ colorScheme });
      colors.push(await page.evaluate(() => getComputedStyle(document.body).backgroundColor));
      await page.screenshot({ path: test.info().outputPath(`${name}-${colorScheme}.png`), fullPage: true });
    }
    expect(colors[0], `${name}: dark background differs from light`).not.toBe(colors[1]);
  };

  await shoot('active');
  for (const [label, name] of [['Waiting', 'waiting'], ['Request access', 'resources'], ['Approvals', 'approvals'], ['History', 'history'], ['Settings', 'settings']] as const) {
    await nav.getByRole('button', { name: new RegExp(`^${label}`) }).click();
    await expect(page.getByRole('heading', { level: 2, name: label })).toBeVisible();
    if (name === 'history') {
      // History is the audit trail the agent fetches from the server.
      await expect(page.getByRole('table')).toContainText('Request denied by dave');
      await expect(page.getByRole('cell', { name: 'use the read replica' })).toBeVisible();
    }
    await shoot(name);
  }

  await nav.getByRole('button', { name: /^Request access/ }).click();
  await page.getByRole('button', { name: 'prod-orders' }).click();
  await expect(page.getByRole('dialog', { name: 'Request access to prod-orders' })).toBeVisible();
  await shoot('request-form');
  await page.keyboard.press('Escape');

  await nav.getByRole('button', { name: /^Approvals/ }).click();
  await page.getByRole('button', { name: 'Approve Bob’s request for prod-orders' }).click();
  await page.getByRole('button', { name: 'Verify and approve' }).click();
  await expect(page.getByRole('dialog', { name: 'Confirm it is you' }).getByLabel('Code from your authenticator app')).toBeVisible();
  await shoot('stepup');
  await page.keyboard.press('Escape');

  await page.getByRole('button', { name: 'Deny Bob’s request for prod-orders' }).click();
  await page.getByRole('dialog', { name: 'Deny Bob’s request?' }).getByRole('button', { name: 'Deny', exact: true }).click();
  await shoot('deny-dialog');
  await page.keyboard.press('Escape');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('main').getByRole('button', { name: 'Sign in' })).toBeVisible();
  await shoot('signin');
});
