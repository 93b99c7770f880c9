// Approve by link (#24): the approvers open the server's /approve/<request> page in a browser that has no agent, sign
// in on the dev IdP's pages, read alice's request and decide it there — bob with a passkey he adds at the server's
// own origin (a virtual authenticator in Chromium), dave with a one-time code. A replayed approve and a proof from
// someone else are refused, a request is denied from the page, and a user who is not an approver is told so. And
// `stint approve` hands the approver the same link when the step-up needs a browser, and waits for the decision.
import type { BrowserContext, Page } from '@playwright/test';
import { approveLink } from '../../shared/contract/approve-page';
import { runCli, type Io } from '../../agent/cli/main';
import { editConfigText, startStack, type Stack } from '../harness/stack';
import { goTo, journey, liveGrantId, serverPost, shot, totpCode, virtualAuthenticator, type Journey, test, expect } from './fixtures/stack';

let stack: Stack;
let j: Journey;
const contexts: BrowserContext[] = [];

/** Production asks the requester for no step-up here (alice's side is not what this spec is about). */
function noRequestStepUp(yaml: string): string {
  return editConfigText(yaml, ['stepUp: { request: always, approve: always, methods: [webauthn, totp] }', 'stepUp: { request: never, approve: always, methods: [webauthn, totp] }']);
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(120_000);
  stack = await startStack({ editConfig: noRequestStepUp });
  j = journey(stack, browser);
});

test.afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await j?.close();
  await stack?.stop();
});

/** A fresh browser (no agent, no cookies) opening the link and signing in on the IdP's pages as `user`. */
async function openLink(user: string, requestId: string, browser: import('@playwright/test').Browser): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(approveLink(stack.serverUrl, requestId));
  await page.locator('input[name=login]').fill(user);
  await page.locator('input[name=password]').fill('anything');
  await page.locator('button[type=submit]').click();
  await page.getByRole('button', { name: /continue/i }).click();
  await expect(page).toHaveURL(approveLink(stack.serverUrl, requestId));
  await expect(page.getByTestId('approve-who')).toBeVisible();
  return page;
}

/** The page's own POST, replayed by the test with the page's cookie and CSRF token. */
async function replay(page: Page, url: string, body: string | null) {
  const session = await (await page.request.get(`${stack.serverUrl}/approve/api/session`)).json() as { csrfToken: string };
  const res = await page.request.post(url, { headers: { 'content-type': 'application/json', 'x-stint-csrf': session.csrfToken }, data: body ?? '{}' });
  return { status: res.status(), json: await res.json() as { code?: string } };
}

test('bob approves with a passkey added at the server, dave with a code; replays are refused; alice’s grant goes live', async ({ browser }, info) => {
  test.setTimeout(150_000);
  const alice = await j.open('alice', { signIn: 'direct' });
  const { request } = await alice.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'look at stuck orders', ticket: 'INC-4711', connect: true });
  expect(request.state).toBe('pending_approval');

  // Bob: the page shows who asks for what and why, before anything is decided.
  const bob = await openLink('bob', request.id, browser);
  const details = bob.getByTestId('approve-request');
  await expect(details.getByRole('heading', { level: 2 })).toHaveText(/asks for read access to Orders \(production\)/);
  await expect(details).toContainText('look at stuck orders');
  await expect(details).toContainText('INC-4711');
  await expect(details).toContainText(/Risk: \d+ \/ 100/);
  await expect(bob.getByTestId('approve-approvals')).toContainText('dba: 0 of 1');
  await shot(bob, 'approve-page-bob', info);

  // Approving needs a step-up; bob has no factor yet, so he adds a passkey here, at the server's own origin.
  await virtualAuthenticator(bob);
  await bob.getByRole('button', { name: 'Approve', exact: true }).click();
  await expect(bob.getByTestId('stepup-error')).toHaveAttribute('data-kind', 'not_enrolled');
  await bob.getByRole('button', { name: 'Set up now' }).click();
  await bob.getByLabel('Name (e.g. “Work laptop”)').fill('Phone');
  await bob.getByTestId('enroll-add-passkey').click();
  await expect(bob.getByTestId('enroll-notice')).toHaveText('Added “Phone”.');
  await bob.getByRole('button', { name: 'Back to approving' }).click();
  const approvePost = bob.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith(`/approve/api/requests/${request.id}/approve`) && (r.postData() ?? '').includes('"webauthn"'));
  await bob.getByTestId('stepup-passkey').click();
  const proofBody = (await approvePost).postData();
  await expect(bob.getByTestId('approve-notice')).toHaveText('Your approval is recorded; more approvals are needed.');
  await expect(bob.getByTestId('approve-approvals')).toContainText('dba: 1 of 1');

  // The same POST again (same proof): refused, and nothing changes.
  const approveUrl = `${stack.serverUrl}/approve/api/requests/${request.id}/approve`;
  expect(await replay(bob, approveUrl, proofBody)).toMatchObject({ status: 409, json: { code: 'already_approved' } });
  // A POST without the page's CSRF token is refused before anything is looked at.
  const forged = await bob.request.post(approveUrl, { headers: { 'content-type': 'application/json' }, data: proofBody ?? '{}' });
  expect(forged.status()).toBe(403);
  expect(await forged.json()).toMatchObject({ code: 'csrf_refused' });

  // Dave (SRE lead) has an authenticator app, no passkey: the page falls back to the code.
  const daveToken = await stack.idp.tokenFor('dave');
  const enrolled = await fetch(`${stack.serverUrl}/v1/stepup/totp/enroll`, { method: 'POST', headers: { authorization: `Bearer ${daveToken}`, 'content-type': 'application/json' }, body: '{}' });
  const { secret } = await enrolled.json() as { secret: string };
  expect((await serverPost(stack, 'dave', '/v1/stepup/totp/confirm', { code: await totpCode(secret) })).status).toBe(200);
  const dave = await openLink('dave', request.id, browser);
  await expect(dave.getByTestId('approve-approvals')).toContainText('Approved by Bob (DBA) (dba)');
  // Bob's proof is bob's: dave cannot use it.
  expect(await replay(dave, approveUrl, proofBody)).toMatchObject({ status: 403, json: { code: 'stepup_invalid' } });
  await dave.getByRole('button', { name: 'Approve', exact: true }).click();
  await dave.locator('#stepup-code').fill(await totpCode(secret, 1));
  await dave.getByRole('button', { name: 'Confirm with code' }).click();
  await expect(dave.getByTestId('approve-notice')).toHaveText('Approved. The requester can connect now.');
  await expect(dave.getByTestId('approve-settled')).toHaveText('Nothing left to decide: the request is approved.');
  await shot(dave, 'approve-page-dave-approved', info);

  // Alice's agent activates the approved request: the grant is live with its tunnel.
  expect(await liveGrantId(alice.agent, 'prod-orders')).toBeTruthy();
});

test('a request is denied from the page with a reason; a user who is not an approver is told they cannot decide it', async ({ browser }) => {
  test.setTimeout(90_000);
  const alice = await j.open('alice', { signIn: 'direct' });
  const { request } = await alice.agent.api.createRequest({ resourceId: 'prod-orders', level: 'write', reason: 'fix a row', connect: false });

  const erin = await openLink('erin', request.id, browser);
  await expect(erin.getByTestId('approve-refused')).toHaveAttribute('data-code', 'request_not_found');
  await expect(erin.getByTestId('approve-refused')).toContainText('you are not in one of the groups that approve it');
  await expect(erin.getByRole('button', { name: 'Approve', exact: true })).toHaveCount(0);

  const dave = await openLink('dave', request.id, browser);
  await dave.getByRole('button', { name: 'Deny…' }).click();
  await dave.getByLabel('Why do you deny it? The requester sees this.').fill('use the read level');
  await dave.getByRole('button', { name: 'Deny', exact: true }).click();
  await expect(dave.getByTestId('approve-notice')).toHaveText('Denied. The requester is told, with your reason.');
  await expect.poll(async () => (await alice.agent.api.refresh({})).requests.find((r) => r.id === request.id)?.state).toBe('denied');
  // Decided: nothing more to do on the page.
  await expect(dave.getByTestId('approve-settled')).toHaveText('Nothing left to decide: the request is denied.');
  await expect(dave.getByRole('button', { name: 'Approve', exact: true })).toHaveCount(0);
});

test('stint approve, when approving needs a passkey the terminal cannot give, prints the link and waits for the decision made there', async ({ browser }) => {
  test.setTimeout(120_000);
  const alice = await j.open('alice', { signIn: 'direct' });
  const { request } = await alice.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'check the nightly job', connect: false });
  // Carol (admin, DBA) has no factor at all: the terminal can neither ask for a code nor add a passkey.
  const carol = stack.agent('carol');
  await carol.signIn();
  await carol.agent.dispose();
  const out: string[] = [];
  const err: string[] = [];
  const opened: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), open: (url) => opened.push(url) };
  const running = runCli(['approve', request.id], io, () => stack.agent('carol').agent);
  const link = approveLink(stack.serverUrl, request.id);
  await expect.poll(() => opened, { timeout: 30_000 }).toEqual([link]);
  expect(err.join('\n')).toContain(`Approve it in your browser instead: sign in there, then confirm with your passkey (or add one). Opening:\n  ${link}`);

  const page = await openLink('carol', request.id, browser);
  await virtualAuthenticator(page);
  await page.getByRole('button', { name: 'Approve', exact: true }).click();
  await page.getByRole('button', { name: 'Set up now' }).click();
  await page.getByLabel('Name (e.g. “Work laptop”)').fill('Laptop');
  await page.getByTestId('enroll-add-passkey').click();
  await expect(page.getByTestId('enroll-notice')).toHaveText('Added “Laptop”.');
  await page.getByRole('button', { name: 'Back to approving' }).click();
  await page.getByTestId('stepup-passkey').click();
  await expect(page.getByTestId('approve-notice')).toHaveText('Your approval is recorded; more approvals are needed.');

  expect(await running, err.join('\n')).toBe(0);
  expect(out).toEqual([`Your approval of Alice (engineer)'s read access to prod-orders (${request.id}) is recorded (in the browser); it waits for the other approvers.`]);
});

test('in the web host an approver is notified with Approve…, Deny… and Show, Approve… opens the approval dialog, and the requester hears the decision', async () => {
  test.setTimeout(90_000);
  const alice = await j.open('alice', { signIn: 'direct' });
  const bob = await j.open('bob', { signIn: 'direct' });
  // Both pages are connected to their agents (they show the signed-in user) before anything happens.
  for (const u of [alice, bob]) await expect(u.page.getByText(`Signed in as ${u.user}@example.com`)).toBeVisible();
  const { request } = await alice.agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'notification check', connect: false });

  // The requester sees who has been asked.
  await goTo(alice.page, 'Waiting');
  await expect(alice.page.locator(`li[aria-labelledby="waiting-${request.id}"]`).getByTestId('waiting-asked')).toHaveText('Asked: dba, sre-leads');

  const asked = bob.page.locator('.toast').filter({ hasText: 'Approval asked' });
  await expect(asked).toContainText('read on Orders (production) for 1h — notification check');
  await expect(asked.getByRole('button')).toHaveText(['Approve…', 'Deny…', 'Show', 'Dismiss']);
  await asked.getByRole('button', { name: 'Approve…' }).click();
  await expect(bob.page.getByRole('dialog', { name: /^Approve .+’s request\?$/ })).toBeVisible();

  expect((await serverPost(stack, 'dave', `/v1/requests/${request.id}/deny`, { reason: 'not today' })).status).toBe(200);
  const denied = alice.page.locator('.toast').filter({ hasText: 'Request denied' });
  await expect(denied).toContainText('Orders (production) was denied: not today');
  await expect(denied.getByRole('button')).toHaveText(['Show', 'Dismiss']);
});
