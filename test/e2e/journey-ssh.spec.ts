// An SSH host on the real stack (issue #23), from the web host in Chromium: alice asks for a shell on the staging web
// host (auto-approved, low risk), the card shows the ssh command, and that command — copied from the page as a user
// would, run in a shell — logs in through the bastion and runs a command on the host. Ending the access from the UI
// cuts the live session and the same command is refused.
import { spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { auditAs, expect, goTo, liveGrantId, realStackForFile, shot, test, verifyChain } from './fixtures/stack';

const run = realStackForFile();
const sh = async (line: string) => (await promisify(execFile)('/bin/sh', ['-c', line], { timeout: 20_000 })).stdout.trim();

test('staging SSH host: one click → the ssh command on the card runs on the host through the bastion → ended from the UI, the session is cut', async () => {
  const info = test.info();
  const WEB = 'Web host (staging)';
  const alice = await run.j.open('alice', { signIn: 'direct' });
  await goTo(alice.page, 'Request access');
  const row = alice.page.locator('li.resource', { hasText: WEB });
  await expect(row).toContainText('instant');
  await alice.page.getByRole('button', { name: WEB }).click();
  const form = alice.page.getByRole('dialog', { name: `Request access to ${WEB}` });
  await expect(form.getByText('Access level: shell')).toBeVisible();
  await form.getByRole('button', { name: 'Connect now' }).click();
  await expect(alice.page.getByText(`${WEB} is ready`)).toBeVisible();

  // The command as the page shows it: nothing to reveal (the key stays in its 0600 file), nothing to type.
  const command = (await alice.page.getByLabel(`ssh command for ${WEB}`, { exact: true }).textContent())!;
  expect(command).toMatch(/^ssh -F \S+\/ssh_config stint-staging-web$/);
  const card = alice.page.locator('li.grant', { hasText: WEB });
  await expect(card.getByRole('button', { name: `Reveal the password for ${WEB}` })).toHaveCount(0);
  await shot(alice.page, '01-ssh-active', info);

  expect(await sh(`${command} 'id -un; hostname >/dev/null && echo on-the-host'`)).toBe('stinttarget\non-the-host');

  // A live interactive session, then the end from the UI.
  const live = spawn('/bin/sh', ['-c', `${command.replace(' stint-staging-web', ' -tt stint-staging-web')} 'echo ready; exec sleep 120'`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  live.stdout.on('data', (d: Buffer) => { said += d.toString(); });
  const exited = new Promise((resolve) => live.once('exit', resolve));
  await expect.poll(() => said, { timeout: 15_000 }).toContain('ready');
  const grantId = await liveGrantId(alice.agent, 'staging-web');

  await alice.page.getByRole('button', { name: `End access to ${WEB} now` }).click();
  await alice.page.getByRole('dialog', { name: `End access to ${WEB} now?` }).getByRole('button', { name: 'End now' }).click();
  const ended = Date.now();
  await expect(alice.page.getByText(/Ended by you/)).toBeVisible();
  await exited;
  expect(Date.now() - ended).toBeLessThan(3_000);
  await expect(sh(`${command} true`)).rejects.toThrow();
  await shot(alice.page, '02-ssh-ended', info);

  // The audit trail: the session on the host with its login, and its end.
  await expect.poll(async () => (await auditAs(run.stack, 'carol', `&grantId=${grantId}`)).filter((e) => /^host\.session\.(killed|closed)$/.test(e.action)).length, { timeout: 10_000 }).toBe(2);
  const audit = await auditAs(run.stack, 'carol', `&grantId=${grantId}`);
  expect(audit.filter((e) => e.action === 'host.session.opened').map((e) => e.detail?.login)).toEqual(['stinttarget', 'stinttarget']);
  expect(await verifyChain(run.stack)).toMatchObject({ ok: true });
});
