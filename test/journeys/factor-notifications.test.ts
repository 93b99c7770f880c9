// #19: every change to a user's step-up factors is told to the user — on every agent of theirs, as it happens — so a
// thief who adds their own authenticator (or removes the owner's) does not go unnoticed. On the real stack: alice's
// laptop sets up an authenticator app and her second device hears of it; removing it is told too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from 'otplib';
import type { AgentNotification } from '../../shared/contract/agent';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('factor changes are told to the user', () => {
  it('adding and removing an authenticator app notify every agent of the user', async () => {
    const laptop = stack.agent('alice');
    const phone = stack.agent('alice');
    await laptop.signIn();
    await phone.signIn();
    const heard: AgentNotification[] = [];
    const stop = phone.agent.subscribe((event) => { if (event.type === 'notification' && event.notification.kind === 'security') heard.push(event.notification); });
    try {
      const { secret } = await laptop.agent.api.enrollTotp({});
      await laptop.agent.api.confirmTotp({ code: await generate({ secret }) });
      await expect.poll(() => heard.map((n) => n.body), { timeout: 10_000 }).toEqual([
        'An authenticator app was added to your account. If this wasn’t you, check Settings and tell your security team.',
      ]);
      expect(heard[0]).toMatchObject({ title: 'Your sign-in factors changed', actions: ['open'] });

      // Removed (with a fresh code, as removal requires): told as well.
      const token = await stack.idp.tokenFor('alice');
      const challenge = (await call(stack.serverUrl, 'POST', '/v1/stepup/challenges', { token, body: { action: { kind: 'enroll' } } })).body;
      const code = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
      expect((await call(stack.serverUrl, 'POST', '/v1/stepup/totp/remove', { token, body: { stepUp: { method: 'totp', challengeId: challenge.challengeId, code } } })).status).toBe(204);
      await expect.poll(() => heard.length, { timeout: 10_000 }).toBe(2);
      expect(heard[1]!.body).toMatch(/^An authenticator app was removed from your account/);
    } finally {
      stop();
      await laptop.agent.dispose();
      await phone.agent.dispose();
    }
  }, 60_000);
});
