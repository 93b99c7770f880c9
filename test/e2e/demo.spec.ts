// The README's start command, as a new user meets it: `npm start` brings up the embedded demo; in the browser they
// sign in at the dev IdP, see the demo resources, get staging access in one click (auto-approved, low risk) and run
// a query through the granted tunnel with psql.
import { test, expect } from '@playwright/test';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let demo: ChildProcess | undefined;
let dir: string;
let url: string;
let log = '';
const base = 20000 + Math.floor(Math.random() * 20000);

test.beforeAll(async () => {
  test.setTimeout(120_000);
  dir = mkdtempSync(join(tmpdir(), 'stint-demo-test-'));
  chmodSync(dir, 0o755); // PostgreSQL runs as its own user and must reach its data dir
  const ready = join(dir, 'ready.json');
  demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts', '--reset'], {
    env: { ...process.env, STINT_DEMO_DIR: join(dir, 'data'), STINT_DEMO_BASE_PORT: String(base), STINT_DEMO_READY_FILE: ready, DBUS_SESSION_BUS_ADDRESS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.stdout!.on('data', (d) => (log += d));
  demo.stderr!.on('data', (d) => (log += d));
  for (let i = 0; i < 900 && !existsSync(ready); i++) {
    if (demo.exitCode !== null) throw new Error(`npm start exited: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!existsSync(ready)) throw new Error(`npm start did not become ready: ${log}`);
  url = JSON.parse(readFileSync(ready, 'utf8')).url;
});

test.afterAll(async () => {
  if (demo?.pid && demo.exitCode === null) {
    // SIGTERM: the demo stops everything it started (database, bastion, keyring) before it exits.
    const exited = new Promise((r) => demo!.once('exit', r));
    demo.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (demo.exitCode === null) demo.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('npm start: sign in, see the demo resources, connect to staging in one click and query it with psql', async ({ page, context }) => {
  test.setTimeout(90_000);
  expect(log).toContain('Stint is running');
  await page.goto(url);
  await page.getByRole('region', { name: 'Sign in' }).getByRole('button', { name: 'Sign in' }).click();
  // No desktop browser on this machine: the UI offers the sign-in page as a link.
  const [idpPage] = await Promise.all([context.waitForEvent('page'), page.getByRole('link', { name: 'Open the sign-in page' }).click()]);
  await idpPage.locator('input[name=login]').fill('alice');
  await idpPage.locator('input[name=password]').fill('anything');
  await idpPage.locator('button[type=submit]').click();
  await idpPage.getByRole('button', { name: /continue/i }).click();
  await expect(idpPage.getByText('You are signed in to Stint')).toBeVisible();
  await idpPage.close();

  await expect(page.getByText('Signed in as alice@example.com')).toBeVisible();
  await page.getByRole('button', { name: /^Request access/ }).click();
  await expect(page.getByRole('button', { name: 'Orders (production)' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Users (staging)' })).toBeVisible();
  await page.screenshot({ path: test.info().outputPath('demo-resources.png') });

  await page.getByRole('button', { name: 'Users (staging)' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Connect now' }).click();
  await expect(page.getByRole('heading', { name: 'Active' })).toBeVisible();
  const endpoint = await page.getByText(/127\.0\.0\.1:\d+/).first().textContent();
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(endpoint ?? '')![1]);
  await page.screenshot({ path: test.info().outputPath('demo-active.png') });

  // The URI (with the password) only on explicit request: the agent's connectionUri.
  const uri = await page.evaluate(async () => {
    // The page's own agent client is not exposed; ask through the same socket protocol the UI uses.
    const token = new URLSearchParams(location.hash.slice(1)).get('token');
    const ws = new WebSocket(`ws://${location.host}/agent`);
    return await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token }));
      ws.onmessage = async (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === 'welcome') {
          ws.send(JSON.stringify({ type: 'call', id: 1, method: 'getState', input: {} }));
        } else if (msg.type === 'result' && msg.id === 1) {
          const grantId = msg.output.grants.find((g: any) => g.localState === 'active').grant.id;
          ws.send(JSON.stringify({ type: 'call', id: 2, method: 'connectionUri', input: { grantId } }));
        } else if (msg.type === 'result' && msg.id === 2) {
          if (msg.ok) resolve(msg.output.uri); else reject(new Error(msg.error.message));
        }
      };
    });
  });
  expect(uri).toContain(`@127.0.0.1:${port}/users`);
  // Asynchronously, with its own timeout: a blocking psql would stop Playwright's timeouts from firing.
  const { stdout } = await promisify(execFile)('psql', [uri, '-At', '-c', 'select count(*) from users'], { timeout: 15_000 });
  expect(stdout.trim()).toBe('25');
});
