// WebAuthn end to end: real Chromium with a CDP virtual authenticator (ctap2, internal, resident keys, UV) makes the
// registrations and assertions; the Fastify app with the step-up routes verifies them. The page is served at
// http://localhost:<port> (RP ID `localhost`), loads @simplewebauthn/browser's bundle and only runs the ceremonies;
// the test drives the HTTP API over the network as the renderer would.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepUpAuditEntry } from '../../server/stepup/routes';
import type { StepUpAction } from '../../server/stepup/seam';
import type { StepUpProof } from '../../shared/contract/http';
import { StepUpChallenge } from '../../shared/contract/stepup';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../dev/chromium';
import { freePort } from '../../dev/ports';
import { buildTestApp } from './app';
import { makeService, TestClock } from '../../dev/stepup';

const require = createRequire(import.meta.url);
const BUNDLE = readFileSync(join(dirname(require.resolve('@simplewebauthn/browser')), '..', 'dist/bundle/index.umd.min.js'), 'utf8');
const PAGE = '<!doctype html><meta charset="utf-8"><title>step-up test</title><script src="/swa.js"></script><body>step-up</body>';

let clock: TestClock;
let app: FastifyInstance;
let base: string;
let other: FastifyInstance; // serves the same page at another origin (same RP ID) for the wrong-origin case
let otherBase: string;
let browser: Browser;
const audit: StepUpAuditEntry[] = [];

function servePage(instance: FastifyInstance): void {
  instance.get('/', async (_req, reply) => reply.type('text/html').send(PAGE));
  instance.get('/swa.js', async (_req, reply) => reply.type('text/javascript').send(BUNDLE));
}

beforeAll(async () => {
  const port = await freePort();
  const otherPort = await freePort();
  base = `http://localhost:${port}`;
  otherBase = `http://localhost:${otherPort}`;
  clock = new TestClock(Date.now());
  const { service } = await makeService({ clock, config: { origins: [base] } });

  app = await buildTestApp(service, audit, servePage);
  await app.listen({ port, host: '127.0.0.1' });

  other = Fastify();
  servePage(other);
  await other.listen({ port: otherPort, host: '127.0.0.1' });

  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await other?.close();
});

interface Device { context: BrowserContext; page: Page; cdp: CDPSession; authenticatorId: string }

/** A browser profile with one virtual platform authenticator, on the given origin. */
async function device(origin = base, opts: { isUserVerified?: boolean } = {}): Promise<Device> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => 'SimpleWebAuthnBrowser' in window);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: opts.isUserVerified ?? true, automaticPresenceSimulation: true },
  });
  return { context, page, cdp, authenticatorId };
}

async function api(method: string, path: string, user: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-test-user': user, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

function register(d: Device, optionsJSON: unknown): Promise<Record<string, unknown>> {
  return d.page.evaluate((o) => (window as any).SimpleWebAuthnBrowser.startRegistration({ optionsJSON: o }), optionsJSON as any);
}

function authenticate(d: Device, optionsJSON: unknown): Promise<Record<string, unknown>> {
  return d.page.evaluate((o) => (window as any).SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: o }), optionsJSON as any);
}

async function enroll(d: Device, user: string, label: string, stepUp?: StepUpProof): Promise<string> {
  const opts = await api('POST', '/v1/stepup/webauthn/register/options', user, { label, ...(stepUp ? { stepUp } : {}) });
  expect(opts.status, JSON.stringify(opts.json)).toBe(200);
  const response = await register(d, opts.json.options);
  const done = await api('POST', '/v1/stepup/webauthn/register/verify', user, { challengeId: opts.json.challengeId, response, label });
  expect(done.status, JSON.stringify(done.json)).toBe(201);
  return done.json.id as string;
}

async function challengeFor(user: string, action: StepUpAction | { kind: 'enroll' }): Promise<StepUpChallenge> {
  const r = await api('POST', '/v1/stepup/challenges', user, { action });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return StepUpChallenge.parse(r.json);
}

function prove(user: string, action: StepUpAction, proof: StepUpProof) {
  return api('POST', '/test/prove', user, { action, proof });
}

describe('WebAuthn step-up in Chromium', () => {
  let alice: Device;
  let aliceCred: string;
  const A: StepUpAction = { kind: 'request', requestId: 'prod-A' };
  const B: StepUpAction = { kind: 'request', requestId: 'prod-B' };

  beforeAll(async () => {
    alice = await device();
  });
  afterAll(async () => { await alice?.context.close(); });

  it('enrolls a platform credential with user verification and lists it', async () => {
    aliceCred = await enroll(alice, 'alice', 'Laptop');
    const list = await api('GET', '/v1/stepup/credentials', 'alice');
    expect(list.json.credentials).toEqual([expect.objectContaining({ id: aliceCred, label: 'Laptop' })]);
    expect((await api('GET', '/v1/stepup/status', 'alice')).json).toMatchObject({ webauthnCredentials: 1, totp: 'none' });
    expect(audit).toContainEqual(expect.objectContaining({ actor: 'alice', action: 'stepup.credential.added' }));
  });

  it('steps up for request A; the same assertion replayed is refused; the request B cannot use it', async () => {
    const c = await challengeFor('alice', A);
    expect(c.methods).toEqual(['webauthn']);
    expect(c.summary).toBe('request prod-A');
    expect((c.webauthn as any).allowCredentials).toEqual([expect.objectContaining({ id: aliceCred })]);
    expect((c.webauthn as any).userVerification).toBe('required');
    const response = await authenticate(alice, c.webauthn);
    const proof: StepUpProof = { method: 'webauthn', challengeId: c.challengeId, response };

    // For B first: refused, and A's challenge is left as it was.
    const forB = await prove('alice', B, proof);
    expect(forB).toMatchObject({ status: 403, json: { code: 'stepup_wrong_action' } });
    const ok = await prove('alice', A, proof);
    expect(ok).toMatchObject({ status: 200, json: { ok: true, method: 'webauthn', credentialId: aliceCred } });

    const replay = await prove('alice', A, proof);
    expect(replay).toMatchObject({ status: 409, json: { code: 'stepup_replayed' } });

    // The same assertion offered against a fresh challenge: it signs the old challenge, so it is refused.
    const fresh = await challengeFor('alice', A);
    const replay2 = await prove('alice', A, { ...proof, challengeId: fresh.challengeId });
    expect(replay2).toMatchObject({ status: 403, json: { code: 'stepup_invalid', reason: 'challenge' } });
  });

  it('a challenge for request B answered with an assertion made for A is refused', async () => {
    const cA = await challengeFor('alice', A);
    const cB = await challengeFor('alice', B);
    const forA = await authenticate(alice, cA.webauthn);
    const r = await prove('alice', B, { method: 'webauthn', challengeId: cB.challengeId, response: forA });
    expect(r).toMatchObject({ status: 403, json: { code: 'stepup_invalid', reason: 'challenge' } });
  });

  it('steps up for an approval, which is a different action from the request', async () => {
    const approve: StepUpAction = { kind: 'approve', requestId: 'prod-A' };
    const c = await challengeFor('alice', approve);
    const response = await authenticate(alice, c.webauthn);
    expect(await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response })).toMatchObject({ status: 403, json: { code: 'stepup_wrong_action' } });
    expect(await prove('alice', approve, { method: 'webauthn', challengeId: c.challengeId, response })).toMatchObject({ status: 200, json: { ok: true } });
  });

  it('refuses an assertion made on another origin', async () => {
    // Same RP ID (localhost), another port: the authenticator signs, the server refuses the origin.
    const elsewhere = await device(otherBase);
    try {
      const cred = await alice.cdp.send('WebAuthn.getCredentials', { authenticatorId: alice.authenticatorId });
      for (const credential of cred.credentials) await elsewhere.cdp.send('WebAuthn.addCredential', { authenticatorId: elsewhere.authenticatorId, credential });
      const c = await challengeFor('alice', A);
      const response = await authenticate(elsewhere, c.webauthn);
      const r = await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response });
      expect(r).toMatchObject({ status: 403, json: { code: 'stepup_invalid', reason: 'origin' } });
    } finally {
      await elsewhere.context.close();
    }
  });

  it('refuses an expired challenge', async () => {
    const c = await challengeFor('alice', A);
    const response = await authenticate(alice, c.webauthn);
    clock.advance(121_000);
    const r = await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response });
    expect(r).toMatchObject({ status: 410, json: { code: 'stepup_expired' } });
  });

  it("refuses another user's credential", async () => {
    const bob = await device();
    try {
      const bobCred = await enroll(bob, 'bob', 'Bob laptop');
      const c = await challengeFor('alice', A);
      // A tampered client asks bob's authenticator to answer alice's challenge.
      const options = { ...(c.webauthn as any), allowCredentials: [{ id: bobCred, type: 'public-key' }] };
      const response = await authenticate(bob, options);
      const r = await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response });
      expect(r).toMatchObject({ status: 403, json: { code: 'stepup_no_credential' } });
      // Bob cannot use alice's challenge either: it is not his.
      const r2 = await prove('bob', A, { method: 'webauthn', challengeId: c.challengeId, response });
      expect(r2).toMatchObject({ status: 403, json: { code: 'stepup_invalid', reason: 'unknown_challenge' } });
    } finally {
      await bob.context.close();
    }
  });

  it('refuses an assertion without user verification when policy requires it, accepts it where policy does not', async () => {
    await alice.cdp.send('WebAuthn.setUserVerified', { authenticatorId: alice.authenticatorId, isUserVerified: false });
    try {
      const c = await challengeFor('alice', A);
      // A client that downgrades the request to presence only.
      const response = await authenticate(alice, { ...(c.webauthn as any), userVerification: 'discouraged' });
      const r = await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response });
      expect(r).toMatchObject({ status: 403, json: { code: 'stepup_invalid', reason: 'user_verification' } });

      const relaxed: StepUpAction = { kind: 'request', requestId: 'relaxed-1' };
      const c2 = await challengeFor('alice', relaxed);
      expect((c2.webauthn as any).userVerification).toBe('preferred');
      const response2 = await authenticate(alice, { ...(c2.webauthn as any), userVerification: 'discouraged' });
      expect(await prove('alice', relaxed, { method: 'webauthn', challengeId: c2.challengeId, response: response2 })).toMatchObject({ status: 200 });
    } finally {
      await alice.cdp.send('WebAuthn.setUserVerified', { authenticatorId: alice.authenticatorId, isUserVerified: true });
    }
  });

  it('adding a second factor needs a step-up with the first', async () => {
    const second = await device();
    try {
      const without = await api('POST', '/v1/stepup/webauthn/register/options', 'alice', { label: 'Phone' });
      expect(without).toMatchObject({ status: 403, json: { code: 'stepup_required', methods: ['webauthn'] } });
      const totp = await api('POST', '/v1/stepup/totp/enroll', 'alice', {});
      expect(totp).toMatchObject({ status: 403, json: { code: 'stepup_required' } });

      const c = await challengeFor('alice', { kind: 'enroll' });
      const response = await authenticate(alice, c.webauthn);
      const id = await enroll(second, 'alice', 'Phone', { method: 'webauthn', challengeId: c.challengeId, response });
      expect((await api('GET', '/v1/stepup/credentials', 'alice')).json.credentials.map((x: any) => x.id)).toEqual([aliceCred, id]);
      // The enroll proof is spent.
      const again = await api('POST', '/v1/stepup/webauthn/register/options', 'alice', { stepUp: { method: 'webauthn', challengeId: c.challengeId, response } });
      expect(again).toMatchObject({ status: 409, json: { code: 'stepup_replayed' } });
      // Removing a factor needs a fresh proof too (with the phone this time).
      expect(await api('POST', `/v1/stepup/credentials/${encodeURIComponent(id)}/remove`, 'alice', {})).toMatchObject({ status: 403, json: { code: 'stepup_required' } });
      const r = await challengeFor('alice', { kind: 'enroll' });
      const proof = { method: 'webauthn', challengeId: r.challengeId, response: await authenticate(second, r.webauthn) };
      expect(await api('POST', `/v1/stepup/credentials/${encodeURIComponent(id)}/remove`, 'alice', { stepUp: proof })).toMatchObject({ status: 204 });
    } finally {
      await second.context.close();
    }
  });

  it('removes a credential: it no longer works, and webauthn-only actions report "not enrolled"', async () => {
    const c = await challengeFor('alice', A);
    const response = await authenticate(alice, c.webauthn);
    // bob has a factor of his own: he is asked for it before anything else (and could only ever remove his own).
    expect(await api('POST', `/v1/stepup/credentials/${encodeURIComponent(aliceCred)}/remove`, 'bob', {})).toMatchObject({ status: 403, json: { code: 'stepup_required' } });
    const e = await challengeFor('alice', { kind: 'enroll' });
    const proof = { method: 'webauthn', challengeId: e.challengeId, response: await authenticate(alice, e.webauthn) };
    expect(await api('POST', `/v1/stepup/credentials/${encodeURIComponent(aliceCred)}/remove`, 'alice', { stepUp: proof })).toMatchObject({ status: 204 });
    expect((await api('GET', '/v1/stepup/credentials', 'alice')).json.credentials).toEqual([]);
    const r = await prove('alice', A, { method: 'webauthn', challengeId: c.challengeId, response });
    expect(r).toMatchObject({ status: 403, json: { code: 'stepup_no_credential' } });
    const none = await api('POST', '/v1/stepup/challenges', 'alice', { action: A });
    expect(none).toMatchObject({ status: 409, json: { code: 'stepup_not_enrolled', methods: ['webauthn'] } });
    expect(audit).toContainEqual(expect.objectContaining({ actor: 'alice', action: 'stepup.credential.removed' }));
  });
});
