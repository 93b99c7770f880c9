// The web host serves the built UI to a local browser only: its own loopback Host, a strict CSP, no other methods.
import { test, expect } from '@playwright/test';
import { startWebHost, type WebHost } from '../../agent/web/host';
import { contentSecurityPolicy } from '../../shared/contract/csp';

let host: WebHost;
test.beforeAll(async () => { host = await startWebHost({ staticDir: 'dist/renderer' }); });
test.afterAll(async () => { await host?.close(); });

test('serves the UI with a strict Content-Security-Policy', async ({ page }) => {
  const response = await page.goto(host.url);
  expect(response?.status()).toBe(200);
  // One policy everywhere: the header the hosts send and the meta tag the build writes for file:// pages.
  expect(response?.headers()['content-security-policy']).toBe(contentSecurityPolicy('header'));
  expect(await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content')).toBe(contentSecurityPolicy('meta'));
  await expect(page.getByRole('heading', { name: 'Stint' })).toBeVisible();
  // …and it holds: a script injected into the page does not run.
  const ran = await page.evaluate(() => new Promise<boolean>((resolve) => {
    document.addEventListener('securitypolicyviolation', () => resolve(false), { once: true });
    const script = document.createElement('script');
    script.textContent = 'window.__injected = true';
    document.body.append(script);
    setTimeout(() => resolve((window as unknown as { __injected?: boolean }).__injected === true), 500);
  }));
  expect(ran).toBe(false);
  await page.screenshot({ path: test.info().outputPath('webhost.png') });
});

test('refuses a request whose Host is not its own loopback address (DNS rebinding)', async ({ request }) => {
  const response = await request.get(`http://127.0.0.1:${host.port}/`, { headers: { host: `evil.example:${host.port}` } });
  expect(response.status()).toBe(403);
});

test('refuses anything but GET', async ({ request }) => {
  const response = await request.post(`${host.origin}/`, { data: {} });
  expect(response.status()).toBe(405);
});
