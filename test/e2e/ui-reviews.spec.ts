// Break-glass in the UI (#24), against the real web host and a scripted agent: the notification stays until dismissed
// and opens Approvals, where the open reviews are listed with a form — a concern needs a note — that records one.
import { BOB, ScriptedAgent, sampleResources } from './fixtures/scripted-agent';
import { expect, test } from './fixtures/ui';

test('a break-glass toast opens Approvals; a review is recorded there, a concern only with a note', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: BOB }, resources: sampleResources() } });
  const now = Date.now();
  agent.reviews.push({
    id: 'rev_1', requestId: 'req_bg1', resourceId: 'prod-orders', requester: 'dave', reason: 'orders outage, INC-9', groups: ['dba'],
    createdAt: new Date(now - 3600_000).toISOString(), dueAt: new Date(now - 60_000).toISOString(), overdue: true,
  });
  await openUi(agent, '?view=resources');
  await expect(page.getByRole('heading', { name: 'Request access' })).toBeVisible();

  agent.notify({ id: 'breakglass:req_bg1', kind: 'breakglass', title: 'Break-glass used', body: 'dave took write on prod-orders without approval — orders outage, INC-9. Review it in Approvals.', actions: ['open'], requestId: 'req_bg1' });
  const toast = page.locator('.toast', { hasText: 'Break-glass used' });
  await expect(toast).toBeVisible();
  await toast.getByRole('button', { name: 'Show' }).click();
  await expect(page.getByRole('heading', { name: 'Approvals' })).toBeVisible();

  const card = page.locator('li.review', { hasText: 'dave used break-glass on prod-orders' });
  await expect(card).toContainText('“orders outage, INC-9”');
  await expect(card).toContainText('overdue');
  await card.getByRole('button', { name: 'Concern' }).click();
  await card.getByRole('button', { name: 'Record review' }).click();
  await expect(card.getByText('Say what the concern is.')).toBeVisible();
  expect(agent.callsTo('recordReview')).toEqual([]);
  await card.getByLabel('Note (required)').fill('no incident ticket');
  await card.getByRole('button', { name: 'Record review' }).click();
  await expect(page.getByText('Review recorded')).toBeVisible();
  expect(agent.callsTo('recordReview')).toEqual([{ reviewId: 'rev_1', outcome: 'concern', note: 'no incident ticket' }]);
  await expect(page.getByText('No break-glass use is waiting for your review.')).toBeVisible();
});
