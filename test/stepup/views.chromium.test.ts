// The React step-up views in real Chromium, against the real step-up routes: enroll a passkey and an authenticator
// app through EnrollView, step up through StepUpView with the virtual authenticator, and see the failures explained
// (cancelled / no passkey here, wrong code with attempts left, locked until HH:MM, not enrolled).
// The views are bundled with esbuild (present through tsx/vite) so the test needs no separate build step.
import { build } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from 'otplib';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepUpAuditEntry } from '../../server/stepup/routes';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../dev/chromium';
import { freePort } from '../../dev/ports';
import { buildTestApp } from './app';
import { makeService, TestClock } from '../../dev/stepup';

const here = dirname(fileURLToPath(import.meta.url));
const PAGE = '<!doctype html><html lang="en"><meta charset="utf-8"><title>views</title><body><div id="root"></div><script type="module" src="/views.js"></script></body></html>';

let clock: TestClock;
let app: FastifyInstance;
let base: string;
let browser: Browser;
const audit: StepUpAuditEntry[] = [];

beforeAll(async () => {
  const bundle = await build({
    entryPoints: [join(here, 'fixtures/views-entry.tsx')],
    bundle: true, write: false, format: 'esm', platform: 'browser', target: 'chrome120', jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"development"' }, logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.text;
  const port = await freePort();
  base = `http://localhost:${port}`;
  clock = new TestClock(Date.now());
  const { service } = await makeService({ clock, config: { origins: [base] } });
  app = await buildTestApp(service, audit, (a) => {
    a.get('/', async (_req, reply) => reply.type('text/html').send(PAGE));
    a.get('/views.js', async (_req, reply) => reply.type('text/javascript').send(js));
  });
  await app.listen({ port, host: '127.0.0.1' });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

async function withAuthenticator(): Promise<{ context: BrowserContext; page: Page; cdp: CDPSession; authenticatorId: string }> {
  const context = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { context, page, cdp, authenticatorId };
}

describe('step-up views in Chromium', () => {
  let d: Awaited<ReturnType<typeof withAuthenticator>>;
  let secret = '';
  beforeAll(async () => { d = await withAuthenticator(); });
  afterAll(async () => { await d?.context.close(); });

  it('StepUpView tells a user with nothing set up to enroll', async () => {
    await d.page.goto(`${base}/?view=stepup&user=carol&request=prod-A`);
    const error = d.page.getByTestId('stepup-error');
    await expect.poll(() => error.getAttribute('data-kind')).toBe('not_enrolled');
    expect(await error.textContent()).toContain('needs a passkey or security key');
  });

  it('EnrollView registers a passkey with the platform authenticator and lists it', async () => {
    await d.page.goto(`${base}/?view=enroll&user=carol`);
    await d.page.getByTestId('enroll-no-credentials').waitFor();
    await d.page.getByLabel('Name').fill('Work laptop');
    await d.page.getByTestId('enroll-add-passkey').click();
    await expect.poll(() => d.page.getByTestId('enroll-notice').textContent()).toBe('Added “Work laptop”.');
    expect(await d.page.getByTestId('enroll-credentials').textContent()).toContain('Work laptop');
  });

  it('StepUpView shows the action and confirms it with the passkey', async () => {
    await d.page.goto(`${base}/?view=stepup&user=carol&request=prod-A`);
    await d.page.getByTestId('stepup-passkey').waitFor();
    const summary = await d.page.getByTestId('stepup-summary').textContent();
    expect(summary).toContain('request prod-A');
    expect(summary).toContain('orders-prod');
    // webauthn-only policy: no code form
    expect(await d.page.getByTestId('stepup-totp').count()).toBe(0);
    await d.page.getByTestId('stepup-passkey').click();
    await d.page.getByTestId('stepup-done').waitFor();
    expect(await d.page.evaluate(() => document.body.dataset.done)).toBe('yes');
  });

  it('adding an authenticator app asks for the passkey first, then shows a QR code, confirmed with a code', async () => {
    await d.page.goto(`${base}/?view=enroll&user=carol`);
    await d.page.getByTestId('enroll-totp-start').click();
    // carol has a passkey: the step-up view appears for the enroll action
    await d.page.getByTestId('stepup-passkey').click();
    await d.page.getByTestId('enroll-totp').waitFor();
    expect(await d.page.locator('img[alt^="QR code"]').getAttribute('src')).toMatch(/^data:image\/png;base64,/);
    secret = (await d.page.getByTestId('enroll-totp-secret').textContent())!;
    await d.page.getByLabel('Code', { exact: true }).fill(await generate({ secret, epoch: Math.floor((clock.t - 30_000) / 1000) }));
    await d.page.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => d.page.getByTestId('enroll-notice').textContent()).toBe('Authenticator app set up.');
  });

  it('explains a cancelled prompt / no passkey on this device, and offers the code', async () => {
    // The authenticator loses its credentials: Chromium answers NotAllowedError as for a cancelled prompt.
    const saved = await d.cdp.send('WebAuthn.getCredentials', { authenticatorId: d.authenticatorId });
    await d.cdp.send('WebAuthn.clearCredentials', { authenticatorId: d.authenticatorId });
    try {
      await d.page.goto(`${base}/?view=stepup&user=carol&request=relaxed-1`);
      await d.page.getByTestId('stepup-passkey').click();
      const error = d.page.getByTestId('stepup-error');
      await expect.poll(() => error.getAttribute('data-kind'), { timeout: 20_000 }).toBe('cancelled');
      expect(await error.textContent()).toContain('use a code from your authenticator app');
      expect(await d.page.getByTestId('stepup-totp').count()).toBe(1);
    } finally {
      for (const credential of saved.credentials) await d.cdp.send('WebAuthn.addCredential', { authenticatorId: d.authenticatorId, credential });
    }
  });

  it('explains wrong codes with attempts left, then the lockout with its end time', async () => {
    await d.page.goto(`${base}/?view=stepup&user=carol&request=relaxed-2`);
    const input = d.page.locator('#stepup-code');
    await input.waitFor();
    const good = await generate({ secret, epoch: Math.floor(clock.t / 1000) });
    const wrong = good === '000000' ? '111111' : '000000';
    const error = d.page.getByTestId('stepup-error');
    for (let left = 4; left >= 1; left--) {
      await input.fill(wrong);
      await d.page.getByRole('button', { name: 'Confirm with code' }).click();
      await expect.poll(() => error.textContent()).toContain(`${left} attempt${left === 1 ? '' : 's'} left`);
    }
    await input.fill(wrong);
    await d.page.getByRole('button', { name: 'Confirm with code' }).click();
    const until = new Date(clock.t + 300_000).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' });
    await expect.poll(() => error.getAttribute('data-kind')).toBe('locked');
    expect(await error.textContent()).toContain(`locked until ${until}`);
    // The passkey still works while codes are locked.
    await d.page.getByTestId('stepup-passkey').click();
    await d.page.getByTestId('stepup-done').waitFor();
  });

  it('removing a passkey asks for a factor first (a stolen token alone cannot strip step-up), then removes it', async () => {
    await d.page.goto(`${base}/?view=enroll&user=carol`);
    await d.page.getByRole('button', { name: 'Remove Work laptop' }).click();
    await expect.poll(() => d.page.getByTestId('stepup-summary').textContent()).toContain('Remove “Work laptop” from your account');
    await d.page.getByTestId('stepup-passkey').click();
    await expect.poll(() => d.page.getByTestId('enroll-notice').textContent()).toBe('Removed “Work laptop”.');
    // The notice comes first; the list is read again after it (a moment later on a busy machine).
    await expect.poll(() => d.page.getByTestId('enroll-credentials').count()).toBe(0);
  });
});
