// The README's first hour, where a newcomer starts: a clean clone inside a 0700 folder (root's home), a brand-new
// TMPDIR and HOME, `npm start`, and the links it prints. In one browser alice enrolls a passkey and asks for write
// on Orders (production); bob and dave — each on the link printed for them, with the same browser — approve with a
// one-time code; alice copies the psql command from her Active card and it runs as pasted into a shell, with no
// password typed; after End now the same command fails. SIGTERM then stops everything the demo started.
// (npm ci on a fresh clone is the fresh-machine check of the session notes; here the clone borrows node_modules.)
import { test, expect, type Page } from '@playwright/test';
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { portIsFree } from '../../dev/port-holder';
import { sweep } from '../../dev/run-dir';
import { enrollPasskey, enrollTotp, approveWithCode, goTo, shot, virtualAuthenticator } from './fixtures/stack';

let demo: ChildProcess | undefined;
let parent: string;
let clone: string;
let log = '';
const links: Record<string, string> = {};
// Below the kernel's ephemeral range (32768+), where any outgoing connection may hold a port for a moment.
const base = 20000 + Math.floor(Math.random() * 120) * 100;
const ports = { server: base, idp: base + 1, webhooks: base + 5, sshd: base + 22, target: base + 23, pg: base + 32, web: [10, 11, 12, 13].map((d) => base + d) };

async function shell(line: string): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', ['-c', line], { timeout: 15_000 });
  return stdout.trim();
}

async function stopDemo(): Promise<void> {
  if (!demo?.pid || demo.exitCode !== null || demo.signalCode !== null) return;
  const exited = new Promise((r) => demo!.once('exit', r));
  // What Ctrl+C sends: the terminal signals the whole foreground process group (npm and the demo under it).
  process.kill(-demo.pid, 'SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
  if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid, 'SIGKILL');
}

test.beforeAll(async () => {
  test.setTimeout(240_000);
  parent = mkdtempSync(join(tmpdir(), 'stint-fresh-')); // mkdtemp makes it 0700, like root's home
  clone = join(parent, 'stint');
  execFileSync('git', ['clone', '-q', resolve('.'), clone]);
  symlinkSync(resolve('node_modules'), join(clone, 'node_modules'));
  for (const dir of ['tmp', 'home']) mkdirSync(join(parent, dir), { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: join(parent, 'tmp'), HOME: join(parent, 'home'), STINT_DEMO_BASE_PORT: String(base) };
  // No desktop session: the demo brings its own keychain, as on a fresh server.
  delete env.DBUS_SESSION_BUS_ADDRESS;
  for (const name of Object.keys(env)) if (name.startsWith('STINT_')) if (name !== 'STINT_DEMO_BASE_PORT') delete env[name];
  demo = spawn('npm', ['start'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  demo.stdout!.on('data', (d) => (log += d));
  demo.stderr!.on('data', (d) => (log += d));
  const linkLine = /^\s+(alice|bob|dave|carol)\s.*?(http:\/\/localhost:\d+\/#token=\S+)\s*$/gm;
  for (let i = 0; i < 2000 && !log.includes('Ctrl+C stops everything'); i++) {
    if (demo.exitCode !== null) throw new Error(`npm start exited: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!log.includes('Ctrl+C stops everything')) throw new Error(`npm start did not become ready: ${log}`);
  for (const m of log.matchAll(linkLine)) links[m[1]!] = m[2]!;
});

test.afterAll(async () => {
  await stopDemo();
  if (clone) {
    // A demo that had to be killed (a failed test) could not stop its services: the pids it recorded in its run dir,
    // and the key command it installed, are cleaned up here so that nothing outlives the test either way.
    const demoDir = join(clone, '.stint-demo');
    const hash = createHash('sha256').update(demoDir).digest('hex').slice(0, 12);
    sweep(join(demoDir, 'run'));
    rmSync(join('/usr/local/libexec', `stint-demo-${hash}`), { recursive: true, force: true });
    rmSync(join('/var/lib/stint-demo', hash), { recursive: true, force: true });
  }
  try { rmdirSync('/var/lib/stint-demo'); } catch { /* another demo keeps its cluster there */ }
  if (parent) rmSync(parent, { recursive: true, force: true });
});

/** Sign in on a demo user's page: the dev IdP asks who you are every time (the user is pre-filled from the link). */
async function signIn(page: Page, user: string): Promise<void> {
  await page.getByRole('main').getByRole('button', { name: 'Sign in', exact: true }).click();
  const [idp] = await Promise.all([page.context().waitForEvent('page'), page.getByRole('link', { name: 'Open the sign-in page' }).click()]);
  await expect(idp.locator('input[name=login]')).toHaveValue(user);
  await idp.locator('input[name=password]').fill('anything');
  await idp.locator('button[type=submit]').click();
  await idp.getByRole('button', { name: /continue/i }).click();
  await expect(idp.getByText('You are signed in to Stint')).toBeVisible();
  await idp.close();
  await expect(page.getByText(`Signed in as ${user}@example.com`)).toBeVisible();
}

test('fresh clone in a 0700 folder: npm start, alice asks, bob and dave approve in the same browser, the copied psql command queries the database', async ({ context }) => {
  test.setTimeout(180_000);
  const info = test.info();
  const ORDERS = 'Orders (production)';
  expect(log).toContain('Stint is running');
  expect(Object.keys(links).sort()).toEqual(['alice', 'bob', 'carol', 'dave']);
  // postgres could not enter the 0700 clone: the demo said where it keeps the cluster instead.
  expect(log).toMatch(/PostgreSQL 15 on 127\.0\.0\.1:\d+ with demo databases orders and users \(data in \/var\/lib\/stint-demo\//);

  const alice = await context.newPage();
  await alice.goto(links.alice!);
  await virtualAuthenticator(alice);
  await signIn(alice, 'alice');
  await enrollPasskey(alice, 'Alice laptop');

  // The approvers, in the same browser on their own links: the IdP's session cookie does not make them alice.
  const bob = await context.newPage();
  await bob.goto(links.bob!);
  await signIn(bob, 'bob');
  const bobSecret = await enrollTotp(bob);
  const dave = await context.newPage();
  await dave.goto(links.dave!);
  await signIn(dave, 'dave');
  const daveSecret = await enrollTotp(dave);

  await goTo(alice, 'Request access');
  await alice.getByRole('button', { name: ORDERS }).click();
  const form = alice.getByRole('dialog', { name: `Request access to ${ORDERS}` });
  await form.getByLabel('Reason (required)').fill('INC-7 look at stuck orders');
  await form.getByLabel('Access level').selectOption('read');
  await form.getByRole('button', { name: 'Verify and ask dba and sre-leads' }).click();
  const stepUp = alice.getByRole('dialog', { name: 'Confirm it is you' });
  await stepUp.getByTestId('stepup-passkey').click();
  await expect(alice.getByText('0 of 2 approvals — waiting for dba and sre-leads')).toBeVisible();
  // The demo's webhook receiver printed the signed event, with the link to the server's approval page.
  await expect.poll(() => log, { timeout: 10_000 }).toMatch(/webhook: request\.awaiting_approval — alice on prod-orders “INC-7 look at stuck orders”/);
  expect(log).toMatch(new RegExp(`webhook: {3}approve or deny: http://localhost:${base}/approve/req_`));

  await approveWithCode(bob, ORDERS, bobSecret, info, 'demo-bob');
  await approveWithCode(dave, ORDERS, daveSecret, info, 'demo-dave');

  await goTo(alice, 'Active');
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const copy = alice.getByRole('button', { name: `Copy psql command for ${ORDERS}` });
  await expect(copy).toBeVisible({ timeout: 20_000 });
  await copy.click();
  await expect(alice.getByText('psql command copied')).toBeVisible();
  await shot(alice, 'demo-alice-active', info);
  const command = await alice.evaluate(() => navigator.clipboard.readText());
  expect(command).toMatch(/^psql '.*passfile=/);
  // Exactly what was copied, pasted into a shell: rows from the production database, no password asked.
  expect(await shell(`${command} -At -c "select count(*) from orders where status = 'stuck'"`)).toBe('7');

  await alice.getByRole('button', { name: `End access to ${ORDERS} now` }).click();
  await alice.getByRole('dialog', { name: `End access to ${ORDERS} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(alice.getByText('No active access.')).toBeVisible();
  await expect(shell(`${command} -At -c 'select 1'`)).rejects.toThrow();

  // The same from a terminal, with the command the demo printed: the CLI drives alice's running agent.
  const cli = /node bin\/stint\.mjs --agent (\S+) grants/.exec(log)?.[1];
  expect(cli, 'the demo prints how to reach alice\'s agent from a terminal').toBeTruthy();
  const stint = async (...args: string[]) => (await promisify(execFile)(process.execPath, ['bin/stint.mjs', '--agent', cli!, ...args], { cwd: clone, timeout: 30_000 })).stdout.trim();
  const requested = JSON.parse((await stint('request', 'staging-users', '--reason', 'check signups', '--json')).split('\n').at(-1)!);
  expect(await shell(`cd ${clone} && ${requested.psql} -At -c 'select count(*) from users'`)).toBe('25');
  expect(await stint('grants')).toMatch(/^staging-users · read · /m);
  expect(await stint('release', 'staging-users')).toContain('staging-users: access ended.');
  await expect(shell(`${requested.psql} -At -c 'select 1'`)).rejects.toThrow();

  // The demo's SSH host: the ssh command the CLI prints logs in through the bastion and runs a command there.
  const host = JSON.parse((await stint('request', 'staging-web', '--reason', 'check the web host', '--json')).split('\n').at(-1)!);
  expect(await shell(`cd ${clone} && ${host.ssh} id -un`)).toBe('stinttarget');
  expect(await stint('release', 'staging-web')).toContain('staging-web: access ended.');
  await expect(shell(`${host.ssh} true`)).rejects.toThrow();

  // An admin edits the demo's config as docs/admin.md says, and breaks it: the running server refuses the reload and
  // says why in the demo's terminal (the demo's server once ignored its file: no reload, no word). Then it is fixed.
  const configFile = join(clone, '.stint-demo', 'server.yaml');
  const good = readFileSync(configFile, 'utf8');
  expect(log).toContain('config .stint-demo/server.yaml: edits to policies, resources and bastions reload at once');
  writeFileSync(configFile, good.replace('riskBelow: 30', 'riskBelow: thirty'));
  await expect.poll(() => log, { timeout: 15_000 }).toMatch(/config reload refused, the running config is kept:[^]*riskBelow/);
  writeFileSync(configFile, good);

  // Ctrl+C (SIGTERM to the process group) stops every process the demo started, within seconds.
  // (npm may exit before the demo under it has finished stopping: what counts is that every port is let go.)
  const stoppedAt = Date.now();
  await stopDemo();
  const all = [ports.server, ports.idp, ports.webhooks, ports.sshd, ports.target, ports.pg, ...ports.web];
  await expect.poll(async () => (await Promise.all(all.map(async (port) => ((await portIsFree(port)) ? undefined : port)))).filter(Boolean), { timeout: 15_000 }).toEqual([]);
  expect(Date.now() - stoppedAt).toBeLessThan(15_000);
  await expect.poll(() => existsSync(join(clone, '.stint-demo', 'run'))).toBe(false);
});
