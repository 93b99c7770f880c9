// Every problem code that can reach the renderer through the UI, provoked in turn on one REAL stack and read the way
// the user reads it (#20): the grant server refuses, the agent passes the refusal on with the server's own code and
// members, the web host carries it over the WebSocket, and the renderer words it (problem-words.ts, the step-up
// view's explanations). stepup_required has its own journey (journey-approve-on-risk.spec.ts).
// Codes the UI cannot provoke (it never offers the call: approving one's own request, revealing someone else's
// password, extending past the policy's total) are covered below the UI, in test/agent/problem-words.test.ts and
// test/shell/bridge.test.ts.
import type { Page } from '@playwright/test';
import type { Agent } from '../../agent/core/agent';
import { expect, goTo, realStackForFile, test, totpCode } from './fixtures/stack';

const run = realStackForFile();

const ORDERS = 'Orders (production)';
const USERS = 'Users (staging)';

/** Settings → set up an authenticator app; returns the key and the code that confirmed it (spent: each code works once). */
async function enrollTotpKeepingCode(page: Page): Promise<{ secret: string; spent: string }> {
  await goTo(page, 'Settings');
  await page.getByTestId('enroll-totp-start').click();
  const secret = (await page.getByTestId('enroll-totp-secret').textContent())!.trim();
  const spent = await totpCode(secret);
  await page.getByLabel('Code', { exact: true }).fill(spent);
  await page.getByRole('button', { name: 'Confirm', exact: true }).click();
  await expect(page.getByTestId('enroll-totp-on')).toBeVisible();
  return { secret, spent };
}

/** Six digits the server cannot accept now (none of the codes of the periods around now). */
async function wrongCode(secret: string): Promise<string> {
  const valid = new Set(await Promise.all([-1, 0, 1, 2].map((step) => totpCode(secret, step))));
  for (let n = 0; ; n++) {
    const code = String(n * 111_111 % 1_000_000).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

/** Approvals → Approve… → "Verify and approve": the step-up dialog (production asks for step-up on every approval). */
async function openApproval(page: Page) {
  await goTo(page, 'Approvals');
  await page.getByRole('button', { name: new RegExp(`^Approve .+’s request for ${ORDERS.replace(/[()]/g, '\\$&')}$`) }).click();
  await page.getByRole('dialog', { name: /^Approve .+’s request\?$/ }).getByRole('button', { name: 'Verify and approve' }).click();
  return page.getByRole('dialog', { name: 'Confirm it is you' });
}

async function submitCode(stepUp: ReturnType<Page['getByRole']>, code: string): Promise<void> {
  await stepUp.locator('#stepup-code').fill(code);
  await stepUp.getByRole('button', { name: 'Confirm with code' }).click();
}

/** Production asks the requester for step-up too: alice proves with a code through her agent (not what is tested). */
async function productionRequest(agent: Agent): Promise<string> {
  const { secret } = await agent.api.enrollTotp({});
  await agent.api.confirmTotp({ code: await totpCode(secret) });
  const { request } = await agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', reason: 'INC-7 stuck orders', connect: false });
  const { challengeId } = await agent.api.stepUpChallenge({ action: { kind: 'request', requestId: request.id } });
  const proved = await agent.api.submitStepUp({ requestId: request.id, proof: { method: 'totp', challengeId, code: await totpCode(secret, 1) } });
  expect(proved.request.state).toBe('pending_approval');
  return request.id;
}

test('each refusal reaches the user in words: server → agent → web host → renderer', async () => {
  test.setTimeout(180_000);
  const alice = await run.j.open('alice', { signIn: 'direct' });
  const bob = await run.j.open('bob', { signIn: 'direct' });
  const dave = await run.j.open('dave', { signIn: 'direct' });
  const requestId = await productionRequest(alice.agent);

  await test.step('stepup_not_enrolled: an approver with no factor is told to set one up', async () => {
    const stepUp = await openApproval(bob.page);
    const error = stepUp.getByTestId('stepup-error');
    await expect(error).toContainText('Set up a way to confirm.');
    await expect(error).toContainText('you have not set one up yet. Add it under “Security keys and codes”.');
    await expect(error.getByRole('button', { name: 'Set up now' })).toBeVisible();
    await stepUp.getByRole('button', { name: 'Cancel' }).click();
  });

  const bobs = await enrollTotpKeepingCode(bob.page);

  await test.step('stepup_replayed, then stepup_invalid with the attempts left the server counted', async () => {
    const stepUp = await openApproval(bob.page);
    await submitCode(stepUp, bobs.spent);
    await expect(stepUp.getByTestId('stepup-error')).toHaveText('Code already used. Each code works once. Wait for your app to show the next code, then type it.');
    await submitCode(stepUp, await wrongCode(bobs.secret));
    await expect(stepUp.getByTestId('stepup-error')).toHaveText(/^Wrong code\. That code is not right\. 4 attempts left before codes are locked for a while\./);
    await stepUp.getByRole('button', { name: 'Cancel' }).click();
  });

  await test.step('stepup_locked: the fifth wrong code locks codes, and says until when', async () => {
    const daves = await enrollTotpKeepingCode(dave.page);
    const stepUp = await openApproval(dave.page);
    const wrong = await wrongCode(daves.secret);
    for (const left of ['4 attempts', '3 attempts', '2 attempts', '1 attempt']) {
      await submitCode(stepUp, wrong);
      await expect(stepUp.getByTestId('stepup-error')).toContainText(`That code is not right. ${left} left`);
    }
    await submitCode(stepUp, wrong);
    await expect(stepUp.getByTestId('stepup-error')).toHaveText(/^Too many wrong codes\. Codes are locked until \d{1,2}:\d{2}.*\. You can still use a passkey if you have one\.$/);
    await stepUp.getByRole('button', { name: 'Cancel' }).click();
  });

  await test.step('illegal_transition: the request was cancelled while the approver was confirming', async () => {
    const stepUp = await openApproval(bob.page);
    await expect(stepUp.getByTestId('stepup-totp')).toBeVisible();
    await alice.agent.api.cancelRequest({ requestId });
    await submitCode(stepUp, await totpCode(bobs.secret, 1));
    await expect(stepUp.getByTestId('stepup-error')).toHaveText('Not accepted. That’s no longer possible: it changed in the meantime (cancelled, decided or ended). The list shows how it is now.');
    await stepUp.getByRole('button', { name: 'Cancel' }).click();
  });

  const requestStaging = async () => {
    await goTo(alice.page, 'Request access');
    await alice.page.getByRole('button', { name: USERS }).click();
    const form = alice.page.getByRole('dialog', { name: `Request access to ${USERS}` });
    await form.getByRole('button', { name: 'Connect now' }).click();
    return form;
  };

  await test.step('credentials_failed: the database is down when access is set up', async () => {
    await run.stack.pg.pause();
    try {
      const form = await requestStaging();
      await expect(form.getByRole('alert')).toHaveText('The Stint server couldn’t set up your database access. Try again in a moment. If it keeps failing, tell your Stint administrator.', { timeout: 30_000 });
      await form.getByRole('button', { name: 'Cancel' }).click();
    } finally {
      await run.stack.pg.resume();
    }
  });

  await test.step('server_unreachable: the grant server is down', async () => {
    await run.stack.stopServer();
    try {
      const form = await requestStaging();
      await expect(form.getByRole('alert')).toHaveText('The server can\'t be reached — your active access still ends on time.', { timeout: 30_000 });
      await form.getByRole('button', { name: 'Cancel' }).click();
    } finally {
      await run.stack.startServer();
    }
  });
});
