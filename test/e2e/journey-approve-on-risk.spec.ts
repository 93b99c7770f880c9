// An approval whose policy asks for step-up only when the request is risky, on the real stack: the approver's UI
// cannot know the risk in advance, so it approves, the server answers stepup_required, and that answer must cross
// the agent's API client, the agent socket and the renderer intact so the verification dialog opens. It used to die
// as a generic server_error on the way, and the approver saw a failure and could not approve.
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
  await bob.page.getByRole('button', { name: /^Approve .+’s request for Users \(staging\)$/ }).click();
  // Nothing in the policy summary says step-up is certain, so the dialog offers a plain Approve.
  await bob.page.getByRole('dialog', { name: /^Approve .+’s request\?$/ }).getByRole('button', { name: 'Approve', exact: true }).click();
  const stepUp = bob.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp.getByTestId('stepup-totp')).toBeVisible();
  await stepUp.locator('#stepup-code').fill(await totpCode(secret, 1));
  await stepUp.getByRole('button', { name: 'Confirm with code' }).click();
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);
  await expect.poll(async () => (await alice.agent.api.refresh({})).requests.find((r) => r.id === request.id)?.state).toBe('approved');
});
