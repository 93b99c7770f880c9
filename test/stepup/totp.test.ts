// TOTP rules with an injected clock: ±1 step, each step once per user, wrong codes limited with a lockout that ends,
// and the challenge binding (action, user, expiry, single use) that every proof goes through.
import { generate } from 'otplib';
import { beforeEach, describe, expect, it } from 'vitest';
import type { StepUpProof } from '../../shared/contract/http';
import { makeService, TestClock } from '../../dev/stepup';

const ALICE = 'alice';
const A = 'hash-of-request-A';
const B = 'hash-of-request-B';
// 00:00:10 is inside step floor(t/30); stepping by 30 s moves exactly one step.
const START = Date.parse('2030-01-01T00:00:10Z');

type Ctx = Awaited<ReturnType<typeof makeService>>;

async function codeAt(secret: string, ms: number): Promise<string> {
  return generate({ secret, epoch: Math.floor(ms / 1000) });
}

async function enrolled(ctx: Ctx, user = ALICE): Promise<string> {
  const { secret } = await ctx.service.enrollTotp({ sub: user, email: `${user}@example.com` });
  // Confirm with the code of the previous step so the current step stays unspent for the test itself.
  const confirm = await ctx.service.confirmTotp(user, await codeAt(secret, ctx.clock.t - 30_000));
  expect(confirm).toEqual({ ok: true });
  return secret;
}

async function challenge(ctx: Ctx, actionHash = A, user = ALICE, methods: ('totp' | 'webauthn')[] = ['totp']): Promise<string> {
  const issued = await ctx.service.issueChallenge({ userId: user, actionHash, methods, userVerification: true });
  if (!issued.ok) throw new Error(issued.message);
  return issued.challenge.challengeId;
}

function prove(ctx: Ctx, proof: StepUpProof, actionHash = A, user = ALICE, methods: ('totp' | 'webauthn')[] = ['totp']) {
  return ctx.service.verify({ userId: user, action: { kind: 'request', requestId: 'r1' }, actionHash, methods, userVerification: true, proof });
}

describe('TOTP enrollment', () => {
  let ctx: Ctx;
  beforeEach(async () => { ctx = await makeService({ clock: new TestClock(START) }); });

  it('gives a secret, an otpauth URI and a QR image, and confirms with a current code', async () => {
    const e = await ctx.service.enrollTotp({ sub: ALICE, email: 'alice@example.com' });
    expect(e.uri).toMatch(/^otpauth:\/\/totp\/Stint:alice%40example\.com\?secret=[A-Z2-7]+/);
    expect(e.qrDataUrl).toMatch(/^data:image\/png;base64,/);
    expect(await ctx.service.status(ALICE)).toMatchObject({ totp: 'pending' });
    expect(await ctx.service.confirmTotp(ALICE, '000000' === (await codeAt(e.secret, START)) ? '111111' : '000000')).toMatchObject({ ok: false, code: 'totp_wrong_code' });
    expect(await ctx.service.confirmTotp(ALICE, await codeAt(e.secret, START))).toEqual({ ok: true });
    expect(await ctx.service.status(ALICE)).toMatchObject({ totp: 'confirmed', attemptsLeft: 5 });
  });

  it('spends the confirming code: it cannot then complete a step-up', async () => {
    const e = await ctx.service.enrollTotp({ sub: ALICE });
    const code = await codeAt(e.secret, START);
    await ctx.service.confirmTotp(ALICE, code);
    const r = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code });
    expect(r).toMatchObject({ ok: false, code: 'stepup_replayed', reason: 'replayed_code' });
  });

  it('keeps the secret encrypted at rest, bound to its user', async () => {
    const secret = await enrolled(ctx);
    const row = await ctx.db.selectFrom('stepup_totp').selectAll().where('user_id', '=', ALICE).executeTakeFirstOrThrow();
    expect(row.secret_enc).not.toContain(secret);
    expect(row.secret_enc).toMatch(/^v1\./);
    // The same ciphertext under another user id does not decrypt (AAD = user id).
    await ctx.db.insertInto('stepup_totp').values({ ...row, user_id: 'mallory' }).execute();
    const c = await challenge(ctx, A, 'mallory');
    await expect(prove(ctx, { method: 'totp', challengeId: c, code: await codeAt(secret, START) }, A, 'mallory')).rejects.toThrow();
  });
});

describe('TOTP verification', () => {
  let ctx: Ctx;
  let secret: string;
  beforeEach(async () => {
    ctx = await makeService({ clock: new TestClock(START) });
    secret = await enrolled(ctx);
  });

  it('accepts the current code, and the codes one step before and after', async () => {
    for (const offset of [0, -30_000, 30_000]) {
      ctx.clock.advance(90_000); // a fresh step each round, so earlier uses do not interfere
      const r = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t + offset) });
      expect(r, `offset ${offset}`).toEqual({ ok: true, method: 'totp' });
    }
  });

  it('refuses a code two steps away', async () => {
    for (const offset of [-60_000, 60_000]) {
      const r = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t + offset) });
      expect(r).toMatchObject({ ok: false, code: 'stepup_invalid', reason: 'wrong_code' });
    }
  });

  it('uses each step once per user: a replayed code is refused without costing an attempt', async () => {
    const code = await codeAt(secret, ctx.clock.t);
    expect(await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code })).toEqual({ ok: true, method: 'totp' });
    const again = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code });
    expect(again).toMatchObject({ ok: false, code: 'stepup_replayed', reason: 'replayed_code' });
    // An older step (the previous one) is refused too once a later step was used.
    const older = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t - 30_000) });
    expect(older).toMatchObject({ ok: false, code: 'stepup_replayed' });
    expect((await ctx.service.status(ALICE)).attemptsLeft).toBe(5);
    // The next step works.
    ctx.clock.advance(30_000);
    expect(await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t) })).toEqual({ ok: true, method: 'totp' });
  });

  it('counts wrong codes, locks for 5 minutes after the fifth, and lets the user in again afterwards', async () => {
    const wrong = async () => {
      const good = await codeAt(secret, ctx.clock.t);
      return prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: good === '123456' ? '654321' : '123456' });
    };
    const left: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await wrong();
      expect(r).toMatchObject({ ok: false, code: 'stepup_invalid' });
      left.push(r.ok ? undefined : r.attemptsLeft);
    }
    expect(left).toEqual([4, 3, 2, 1]);
    const fifth = await wrong();
    const lockedUntil = ctx.clock.t + 5 * 60_000;
    expect(fifth).toMatchObject({ ok: false, code: 'stepup_locked', attemptsLeft: 0, retryAfter: lockedUntil });

    // While locked even the right code is refused, and the challenge says so up front.
    ctx.clock.advance(4 * 60_000);
    const c = await ctx.service.issueChallenge({ userId: ALICE, actionHash: A, methods: ['totp'], userVerification: true });
    expect(c.ok && c.challenge.totp).toEqual({ attemptsLeft: 0, lockedUntil });
    const during = await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t) });
    expect(during).toMatchObject({ ok: false, code: 'stepup_locked', retryAfter: lockedUntil });

    // After the lockout, the right code works and the count starts again.
    ctx.clock.t = lockedUntil + 1000;
    expect(await prove(ctx, { method: 'totp', challengeId: await challenge(ctx), code: await codeAt(secret, ctx.clock.t) })).toEqual({ ok: true, method: 'totp' });
    expect(await ctx.service.status(ALICE)).toEqual({ webauthnCredentials: 0, totp: 'confirmed', attemptsLeft: 5 });
  });

  it('lets the user retry on the same challenge after a wrong code; success consumes it', async () => {
    const challengeId = await challenge(ctx);
    expect(await prove(ctx, { method: 'totp', challengeId, code: '999999' === (await codeAt(secret, ctx.clock.t)) ? '888888' : '999999' })).toMatchObject({ ok: false, attemptsLeft: 4 });
    expect(await prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t) })).toEqual({ ok: true, method: 'totp' });
    ctx.clock.advance(30_000);
    expect(await prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t) })).toMatchObject({ ok: false, code: 'stepup_replayed', reason: 'challenge' });
  });
});

describe('challenge binding', () => {
  let ctx: Ctx;
  let secret: string;
  beforeEach(async () => {
    ctx = await makeService({ clock: new TestClock(START) });
    secret = await enrolled(ctx);
  });

  it('refuses a proof for request A presented for request B, and leaves A usable', async () => {
    const challengeId = await challenge(ctx, A);
    const code = await codeAt(secret, ctx.clock.t);
    expect(await prove(ctx, { method: 'totp', challengeId, code }, B)).toMatchObject({ ok: false, code: 'stepup_wrong_action' });
    expect(await prove(ctx, { method: 'totp', challengeId, code }, A)).toEqual({ ok: true, method: 'totp' });
  });

  it("refuses another user's challenge as unknown", async () => {
    await enrolled(ctx, 'bob');
    const bobs = await challenge(ctx, A, 'bob');
    expect(await prove(ctx, { method: 'totp', challengeId: bobs, code: await codeAt(secret, ctx.clock.t) })).toMatchObject({ ok: false, code: 'stepup_invalid', reason: 'unknown_challenge' });
  });

  it('expires a challenge after 2 minutes', async () => {
    const challengeId = await challenge(ctx);
    ctx.clock.advance(120_000);
    expect(await prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t) })).toMatchObject({ ok: false, code: 'stepup_expired' });
  });

  it('refuses TOTP where policy allows WebAuthn only, and reports methods not set up', async () => {
    const challengeId = await challenge(ctx);
    expect(await prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t) }, A, ALICE, ['webauthn'])).toMatchObject({ ok: false, code: 'stepup_method_not_allowed' });
    const issued = await ctx.service.issueChallenge({ userId: ALICE, actionHash: A, methods: ['webauthn'], userVerification: true });
    expect(issued).toMatchObject({ ok: false, code: 'stepup_not_enrolled', policyMethods: ['webauthn'] });
    const both = await ctx.service.issueChallenge({ userId: ALICE, actionHash: A, methods: ['webauthn', 'totp'], userVerification: true });
    expect(both.ok && both.challenge.methods).toEqual(['totp']);
    expect(both.ok && both.challenge.webauthn).toBeUndefined();
  });

  it('lets only one of two concurrent proofs with the same challenge succeed', async () => {
    const challengeId = await challenge(ctx);
    const results = await Promise.all([
      prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t) }),
      prove(ctx, { method: 'totp', challengeId, code: await codeAt(secret, ctx.clock.t + 30_000) }),
    ]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.find((r) => !r.ok)).toMatchObject({ code: 'stepup_replayed' });
  });
});
