// The admin console's screens and History's paging, with a scripted agent (the real-stack revoke is
// journey-admin.spec.ts): History starts at the newest entry and pages on with "Show older"; the Admin section is
// there for admins only; grants still ending say what they wait for; pending requests show approvers and age; webhook
// endpoints and policy versions show what the agent reads.
import { ScriptedAgent, sampleResources } from './fixtures/scripted-agent';
import { expect, test } from './fixtures/ui';
import type { AuditEntry } from '../../shared/contract/http';

const DANA = { sub: 'dana', email: 'dana@example.com', name: 'Dana', groups: ['admins'], admin: true, approver: false };

function entries(n: number): AuditEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: i + 1, at: new Date(Date.now() - (n - i) * 60_000).toISOString(), actor: 'dana', subject: 'dana', action: 'request.created',
    resourceId: 'staging-users', reason: `entry ${i + 1}`, prevHash: '0'.repeat(64), hash: 'a'.repeat(64),
  }));
}

test('History shows the newest entries first and pages on to older ones', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: { ...DANA, admin: false } }, resources: sampleResources() } });
  agent.auditEntries.push(...entries(150));
  await openUi(agent, '?view=history');
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows.nth(1)).toContainText('entry 150');
  await expect(rows).toHaveCount(101); // header + the first page of 100
  await page.getByRole('button', { name: 'Show older' }).click();
  await expect(rows).toHaveCount(151);
  await expect(rows.last()).toContainText('entry 1');
  await expect(page.getByRole('button', { name: 'Show older' })).toHaveCount(0);
  // Not an admin: no Admin section.
  await expect(page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Admin' })).toHaveCount(0);
});

test('Admin: ending grants say what they wait for; pending requests show approvers and age; audit pages by cursor', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: DANA }, resources: sampleResources() } });
  const ended = agent.grant({ resourceId: 'prod-orders', level: 'write', owner: 'bob', state: 'revoked', revocation: 'retrying' }, 0).grant;
  const pending = agent.request({
    resourceId: 'prod-orders', requester: 'bob', requesterName: 'Bob', level: 'write', reason: 'INC-7 hotfix', state: 'pending_approval',
    createdAt: new Date(Date.now() - 25 * 60_000).toISOString(), approvalsNeeded: [{ group: 'dba', count: 2, have: 1 }],
    approvals: [{ approver: 'dave', approverName: 'Dave', group: 'dba', at: new Date().toISOString() }],
  });
  agent.adminLiveView = {
    active: [],
    ending: [{ grant: ended, reason: 'cleanup', approvals: [], policyVersion: 1, ending: { tries: 3, lastError: 'connection refused' } }],
    pending: [pending],
  };
  agent.auditEntries.push(...entries(120));
  await openUi(agent, '?view=admin');
  await expect(page.getByRole('heading', { level: 2, name: 'Admin' })).toBeVisible();
  await expect(page.getByText('Nobody has access right now.')).toBeVisible();
  await expect(page.getByText('ending: waiting for prod-orders (3 tries, last error: connection refused)')).toBeVisible();

  await page.getByRole('button', { name: 'Pending requests' }).click();
  const card = page.locator('li.card', { hasText: 'INC-7 hotfix' });
  await expect(card).toContainText('1/2 from dba — so far Dave');
  await expect(card).toContainText(/Age\s*25m/);

  await page.getByRole('button', { name: 'Audit', exact: true }).click();
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows.nth(1)).toContainText('entry 120');
  await page.getByRole('button', { name: 'Next page' }).click();
  await expect(rows.nth(1)).toContainText('entry 70');
  await page.getByRole('button', { name: 'Newer' }).click();
  await expect(rows.nth(1)).toContainText('entry 120');
  expect(agent.calls.filter((c) => c.method === 'adminAudit').map((c) => (c.input as { before?: number }).before)).toEqual([undefined, 71, undefined]);
});

test('Admin: webhook endpoints show their last delivery, failures and backlog; policy versions show newest first with diffs', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: DANA }, resources: sampleResources() } });
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
  agent.adminWebhookEndpoints = [{
    id: 'siem', url: 'https://siem.example.com', format: 'standard', events: ['grant.activated', 'grant.revoked'],
    delivered: 41, pending: 3, failed: 1, failedAttempts: 5, lastDeliveryAt: at(30), oldestPendingAt: at(4),
    lastFailure: { at: at(2), error: 'HTTP 503', eventType: 'grant.revoked' },
  }];
  agent.adminPolicyVersions = [
    { policyId: 'prod', version: 2, hash: 'b'.repeat(64), createdAt: at(5), current: true, diff: '--- policies/prod\n+++ policies/prod\n@@ -1 +1 @@\n-maxDuration: 3600\n+maxDuration: 1800' },
    { policyId: 'prod', version: 1, hash: 'a'.repeat(64), createdAt: at(60), current: false, diff: '+++ policies/prod\n+maxDuration: 3600' },
  ];
  await openUi(agent, '?view=admin');

  await page.getByRole('button', { name: 'Webhooks' }).click();
  const hook = page.getByRole('listitem', { name: 'siem' });
  await expect(hook).toContainText(/Sends to\s*https:\/\/siem\.example\.com/);
  await expect(hook).toContainText(/Format\s*standard/);
  await expect(hook).toContainText(/Events\s*grant\.activated, grant\.revoked/);
  await expect(hook).toContainText(/Last delivery\s*failed .* \(grant\.revoked\): HTTP 503/);
  await expect(hook).toContainText(/Failures\s*1 given up, 5 failed attempts/);
  await expect(hook).toContainText(/Backlog\s*3 \(oldest /);

  await page.getByRole('button', { name: 'Policy versions' }).click();
  const versions = page.getByRole('region', { name: 'prod' }).getByRole('listitem');
  await expect(versions).toHaveCount(2);
  await expect(versions.nth(0)).toContainText('Version 2 current');
  await expect(versions.nth(0).locator('pre')).toContainText('+maxDuration: 1800');
  await expect(versions.nth(1)).toContainText('Version 1');
  await expect(versions.nth(1)).not.toContainText('current');
  await expect(versions.nth(1)).toContainText('a'.repeat(64));
});
