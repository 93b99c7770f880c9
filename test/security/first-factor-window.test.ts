// Item 1 of the review: a user's first step-up factor needs no proof (there is none to give), so a stolen access
// token could set up the thief's factor for a user who has none — every user before their first enrollment, and
// anyone right after an admin reset. The first factor may now be set up only within stepup.firstFactorWindow of the
// user's sign-in (the token's auth_time, kept across refreshes). Real stack, real IdP tokens; the window is 3 s here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { editConfigText, startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ editConfig: (yaml) => editConfigText(yaml, ['  totpKey: env:STINT_DEMO_TOTP_KEY', '  totpKey: env:STINT_DEMO_TOTP_KEY\n  firstFactorWindow: 3s']) });
}, 120_000);
afterAll(async () => { await stack?.stop(); });

const enroll = (token: string) => call(stack.serverUrl, 'POST', '/v1/stepup/totp/enroll', { token, body: {} });

describe('the first step-up factor', () => {
  it('can be set up right after signing in', async () => {
    expect((await enroll(await stack.idp.tokenFor('alice'))).status).toBe(200);
  });

  it('cannot be set up with a token from a sign-in older than the window; signing in again makes it possible', async () => {
    const old = await stack.idp.tokenFor('bob');
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const refused = await enroll(old);
    expect(refused).toMatchObject({ status: 403, body: { code: 'fresh_signin_required', type: 'https://stint.dev/problems/fresh_signin_required' } });
    expect(refused.body.detail).toMatch(/sign out, sign in again/);
    expect((await enroll(await stack.idp.tokenFor('bob'))).status).toBe(200);
  });
});
