// HIGH (review of the first wave): step-up could be stripped with a stolen access token. DELETE /v1/stepup/totp and
// DELETE /v1/stepup/credentials/:id needed nothing but the bearer token, so a thief deleted the victim's factors,
// enrolled their own (the first factor needs no proof) and passed every later step-up as the victim. On the real
// server (real step-up service, real TOTP): removing a factor now needs a fresh proof with a factor the user has,
// the old DELETE routes are gone, and a wrong proof removes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from 'otplib';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';

let stack: Stack;
let stolen: string;
beforeAll(async () => {
  stack = await startStack();
  stolen = await stack.idp.tokenFor('alice');
}, 120_000);
afterAll(async () => { await stack?.stop(); });

const api = (method: string, path: string, body?: unknown) => call(stack.serverUrl, method, path, { token: stolen, ...(body !== undefined ? { body } : {}) });
const code = (secret: string, steps = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + steps * 30 });

describe('changing step-up factors with only an access token', () => {
  it('cannot remove, replace or probe a factor; the owner can, with a fresh proof', async () => {
    // alice sets up an authenticator app (her first factor needs no proof).
    const enrolled = await api('POST', '/v1/stepup/totp/enroll', {});
    expect(enrolled.status).toBe(200);
    const secret: string = enrolled.body.secret;
    expect((await api('POST', '/v1/stepup/totp/confirm', { code: await code(secret) })).status).toBe(200);

    // The thief, holding alice's access token: the old routes are gone…
    expect((await api('DELETE', '/v1/stepup/totp')).status).toBe(404);
    expect((await api('DELETE', '/v1/stepup/credentials/anything')).status).toBe(404);
    // …removal asks for a proof first, before even looking the credential up…
    expect(await api('POST', '/v1/stepup/totp/remove', {})).toMatchObject({ status: 403, body: { code: 'stepup_required', methods: ['totp'] } });
    expect(await api('POST', '/v1/stepup/credentials/cred-that-does-not-exist/remove', {})).toMatchObject({ status: 403, body: { code: 'stepup_required' } });
    // …adding their own factor too…
    expect(await api('POST', '/v1/stepup/totp/enroll', {})).toMatchObject({ status: 403, body: { code: 'stepup_required' } });
    // …and a guessed code removes nothing.
    const challenge = await api('POST', '/v1/stepup/challenges', { action: { kind: 'enroll' } });
    expect(challenge.status).toBe(201);
    const guess = (Number(await code(secret, 1)) + 1).toString().padStart(6, '0').slice(-6);
    const wrong = await api('POST', '/v1/stepup/totp/remove', { stepUp: { method: 'totp', challengeId: challenge.body.challengeId, code: guess } });
    expect(wrong.status).toBe(403);
    expect(wrong.body.code).toMatch(/^stepup_/);
    expect((await api('GET', '/v1/stepup/status')).body.totp).toBe('confirmed');

    // alice, with her app: a fresh enroll challenge and its code remove the factor, once.
    const fresh = await api('POST', '/v1/stepup/challenges', { action: { kind: 'enroll' } });
    const proof = { method: 'totp', challengeId: fresh.body.challengeId, code: await code(secret, 1) };
    expect((await api('POST', '/v1/stepup/totp/remove', { stepUp: proof })).status).toBe(204);
    expect((await api('GET', '/v1/stepup/status')).body.totp).toBe('none');
    const audit = (await call(stack.serverUrl, 'GET', '/v1/audit?limit=500', { token: await stack.idp.tokenFor('carol') })).body.entries as Array<{ actor: string; action: string; detail?: { change?: string } }>;
    expect(audit.filter((e) => e.actor === 'alice').map((e) => e.action)).toEqual(expect.arrayContaining(['stepup.enroll.refused', 'stepup.totp.removed']));
    expect(audit.find((e) => e.action === 'stepup.enroll.refused')?.detail?.change).toBe('remove');
  });
});
