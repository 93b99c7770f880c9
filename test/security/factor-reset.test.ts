// Issue #19 (review of the first wave): a user who lost their phone and passkey could neither step up nor add a factor
// (adding one needs a proof with one they have), and nothing let anyone help them. Now an administrator resets them:
// POST /v1/admin/users/:sub/factors/reset, refused by the router to anyone not an admin, with a reason and a fresh
// proof of the admin's OWN bound to resetting that very user. On the real stack: the reset is audited about the user,
// told to the user's event stream (factor.changed), and the user's next factor needs no proof, as a first one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from 'otplib';
import type { AuditEntry } from '../../shared/contract/http';
import { verifyAudit } from '../../server/lifecycle/audit';
import { KyselyStepUpStore } from '../../server/stepup/store';
import { startStack, type Stack } from '../harness/stack';
import { call } from '../server/helpers';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

const code = (secret: string, steps = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + steps * 30 });
const as = (token: string) => (method: string, path: string, body?: unknown) => call(stack.serverUrl, method, path, { token, ...(body !== undefined ? { body } : {}) });

/** A first authenticator app (no proof needed for it); returns its secret. */
async function firstTotp(api: ReturnType<typeof as>): Promise<string> {
  const enrolled = await api('POST', '/v1/stepup/totp/enroll', {});
  expect(enrolled.status).toBe(200);
  expect((await api('POST', '/v1/stepup/totp/confirm', { code: await code(enrolled.body.secret) })).status).toBe(200);
  return enrolled.body.secret as string;
}

/** The user's live event stream, as their agents get it: the event types heard so far. */
async function listen(token: string): Promise<{ events: () => Array<{ type: string; [k: string]: unknown }>; close: () => void }> {
  const abort = new AbortController();
  const response = await fetch(`${stack.serverUrl}/v1/events`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: abort.signal });
  expect(response.status).toBe(200);
  let text = '';
  void (async () => {
    const decoder = new TextDecoder();
    const reader = response.body!.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    } catch { /* closed */ }
  })();
  return {
    events: () => text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => (JSON.parse(line.slice(6)) as { event: { type: string } }).event),
    close: () => abort.abort(),
  };
}

describe("an admin's reset of a user's factors", () => {
  it('is refused to non-admins, needs the admin\'s own proof for that user, and leaves the user free to enroll a first factor', async () => {
    const aliceToken = await stack.idp.tokenFor('alice');
    const carolToken = await stack.idp.tokenFor('carol'); // admins
    const alice = as(aliceToken);
    const carol = as(carolToken);
    const reset = '/v1/admin/users/alice/factors/reset';

    // alice has an authenticator app and a passkey (registered in a browser elsewhere; here, written as the
    // registration would) — and then loses her phone and her laptop.
    await firstTotp(alice);
    await new KyselyStepUpStore(stack.server().store.db as never).addCredential({
      id: 'alice-laptop-passkey', userId: 'alice', publicKey: new Uint8Array([1, 2, 3]), counter: 0, transports: ['internal'], label: 'Laptop', createdAt: Date.now(),
    });
    expect((await alice('GET', '/v1/stepup/status')).body).toMatchObject({ webauthnCredentials: 1, totp: 'confirmed' });

    // Not an admin (alice herself, or a thief with her token): refused by the router, before any handler.
    expect(await alice('POST', reset, { reason: 'lost my phone' })).toMatchObject({ status: 403, body: { code: 'admin_only' } });
    expect(await alice('POST', `${reset}/challenge`, {})).toMatchObject({ status: 403, body: { code: 'admin_only' } });
    expect((await alice('GET', '/v1/stepup/status')).body.totp).toBe('confirmed');

    // An admin needs a factor of their own, and a fresh proof with it, bound to resetting alice.
    expect(await carol('POST', `${reset}/challenge`, {})).toMatchObject({ status: 409, body: { code: 'stepup_not_enrolled' } });
    const carolSecret = await firstTotp(carol);
    expect(await carol('POST', reset, { reason: 'INC-42 lost phone' })).toMatchObject({ status: 403, body: { code: 'stepup_required', methods: ['totp'] } });
    expect(await carol('POST', reset, {})).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    // A proof for resetting bob does not reset alice.
    const forBob = await carol('POST', '/v1/admin/users/bob/factors/reset/challenge', {});
    expect(forBob.status).toBe(201);
    expect(forBob.body.summary).toBe('Reset every sign-in factor of bob');
    const wrong = await carol('POST', reset, { reason: 'INC-42 lost phone', stepUp: { method: 'totp', challengeId: forBob.body.challengeId, code: await code(carolSecret, 1) } });
    expect(wrong).toMatchObject({ status: 403, body: { code: 'stepup_wrong_action' } });
    expect((await alice('GET', '/v1/stepup/status')).body).toMatchObject({ webauthnCredentials: 1, totp: 'confirmed' });

    // The reset, with alice's agents listening.
    const stream = await listen(aliceToken);
    try {
      const challenge = await carol('POST', `${reset}/challenge`, {});
      expect(challenge).toMatchObject({ status: 201, body: { summary: 'Reset every sign-in factor of alice', methods: ['totp'], userVerification: true } });
      const done = await carol('POST', reset, { reason: 'INC-42 lost phone', stepUp: { method: 'totp', challengeId: challenge.body.challengeId, code: await code(carolSecret, 1) } });
      expect(done).toMatchObject({ status: 200, body: { subject: 'alice', removed: { passkeys: 1, totp: 'confirmed' } } });
      // The proof works once.
      expect((await carol('POST', reset, { reason: 'again', stepUp: { method: 'totp', challengeId: challenge.body.challengeId, code: await code(carolSecret, 1) } })).body.code).toBe('stepup_replayed');

      await expect.poll(() => stream.events().filter((e) => e.type === 'factor.changed'), { timeout: 10_000 })
        .toEqual([{ type: 'factor.changed', change: 'removed', factor: 'passkey', label: 'Laptop' }, { type: 'factor.changed', change: 'removed', factor: 'authenticator app' }]);
    } finally {
      stream.close();
    }

    // alice has no factor now; her next one is a first one and needs no proof.
    expect((await alice('GET', '/v1/stepup/status')).body).toMatchObject({ webauthnCredentials: 0, totp: 'none' });
    await firstTotp(alice);
    // …and the one after that needs a proof again.
    expect(await alice('POST', '/v1/stepup/totp/enroll', {})).toMatchObject({ status: 403, body: { code: 'stepup_required' } });

    // On the record, about alice (so she sees it too), with who, why and what went; and the refusals.
    const audit = (await carol('GET', '/v1/audit?limit=1000')).body.entries as AuditEntry[];
    const row = audit.find((e) => e.action === 'stepup.factors.reset');
    expect(row).toMatchObject({ actor: 'carol', subject: 'alice', reason: 'INC-42 lost phone', detail: { admin: 'carol', subject: 'alice', method: 'totp', passkeys: [{ id: 'alice-laptop-passkey', label: 'Laptop' }], totp: 'confirmed' } });
    expect(audit.filter((e) => e.action === 'refused.stepup.factors.reset').map((e) => e.actor)).toEqual(['alice', 'alice']);
    expect(audit.find((e) => e.action === 'stepup.factors.reset.refused')).toMatchObject({ actor: 'carol', subject: 'alice', detail: { code: 'stepup_wrong_action' } });
    const hers = (await alice('GET', '/v1/audit?limit=1000')).body.entries as AuditEntry[];
    expect(hers.map((e) => e.action)).toContain('stepup.factors.reset');
    expect(await verifyAudit(stack.server().store.db)).toMatchObject({ ok: true });
  }, 60_000);
});
