// The web host serves the built UI to a local browser only: its own loopback Host, a strict CSP, no other methods.
import { test, expect } from '@playwright/test';
import { startWebHost, type WebHost } from '../../agent/web/host';

let host: WebHost;
test.beforeAll(async () => { host = await startWebHost({ staticDir: 'dist/renderer' }); });
test.afterAll(async () => { await host?.close(); });

test('serves the UI with a strict Content-Security-Policy', async ({ page }) => {
  const response = await page.goto(host.url);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
  await expect(page.getByRole('heading', { name: 'Stint' })).toBeVisible();
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
