// An approval whose policy asks for step-up only when the request is risky, on the real stack. The approver's UI
// cannot know the risk rule, so the server says, for each request waiting for them, whether approving it needs a
// step-up and with which methods (approvalStepUp, from the function the approve route enforces); that answer crosses
// the agent's API client, the agent socket and the renderer, so the card says it before bob clicks and the dialog
// goes straight to verification.
import { editConfigText, startStack, type Stack } from '../harness/stack';
import { enrollTotp, goTo, journey, totpCode, type Journey, test, expect } from './fixtures/stack';

let stack: Stack;
let j: Journey;

/** Staging needs a DBA's approval, and approving asks for step-up at any risk score (on-risk, threshold 0). */
function approveOnRisk(yaml: string): string {
  return editConfigText(yaml,
    ['autoApprove: { when: { riskBelow: 30 } }', 'description: a DBA approves every staging request'],
    ['stepUp: { request: on-risk, methods: [webauthn, totp] }', 'stepUp: { request: never, approve: on-risk, riskAtLeast: 0, methods: [webauthn, totp] }']);
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(120_000);
  stack = await startStack({ editConfig: approveOnRisk });
  j = journey(stack, browser);
});

test.afterAll(async () => {
  await j?.close();
  await stack?.stop();
});

test('approve on risk: the server asks for step-up, the approver verifies with a code and the request is approved', async () => {
  test.setTimeout(90_000);
  const alice = await j.open('alice', { signIn: 'direct' });
  const bob = await j.open('bob', { signIn: 'direct' });
  const secret = await enrollTotp(bob.page);
  const { request } = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'look at signups', connect: false });
  expect(request.state).toBe('pending_approval');

  await goTo(bob.page, 'Approvals');
  await expect(bob.page.getByTestId(`approval-stepup-${request.id}`)).toHaveText('Approving needs a passkey or a one-time code');
  await bob.page.getByRole('button', { name: /^Approve .+’s request for Users \(staging\)$/ }).click();
  // The policy summary alone says only "on-risk"; the server's answer makes the dialog ask for verification first.
  const dialog = bob.page.getByRole('dialog', { name: /^Approve .+’s request\?$/ });
  await expect(dialog.getByTestId('approve-stepup-words')).toHaveText('Approving needs a passkey or a one-time code.');
  await dialog.getByRole('button', { name: 'Verify and approve', exact: true }).click();
  const stepUp = bob.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp.getByTestId('stepup-totp')).toBeVisible();
  await stepUp.locator('#stepup-code').fill(await totpCode(secret, 1));
  await stepUp.getByRole('button', { name: 'Confirm with code' }).click();
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);
  await expect.poll(async () => (await alice.agent.api.refresh({})).requests.find((r) => r.id === request.id)?.state).toBe('approved');
});
