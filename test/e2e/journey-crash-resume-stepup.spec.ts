// Issue #21 in the browser, where the policy asks for a step-up (staging-shop, MariaDB: always): alice's Stint stops
// while her access is active, and starts again on the same laptop. Taking the access back needs a fresh step-up, in
// the same dialog the app uses everywhere: the window the tray's Resume opens (its `?view=resume` route) shows it for
// that grant, and the Active view's Resume asks for it; her passkey (the laptop's authenticator, which outlived
// Stint) confirms it, and the access comes back with new keys — the password of the run that stopped is refused by
// MariaDB itself, and the session it had open is cut.
import mysql from 'mysql2/promise';
import { auditAs, enrollPasskey, expect, goTo, liveGrantId, realStackForFile, shot, test, virtualAuthenticator } from './fixtures/stack';

const run = realStackForFile({ mariadb: true });

test('Stint stopped mid-grant under a step-up policy: Resume asks for the passkey, then the access is back and the old password dead', async () => {
  test.setTimeout(120_000);
  const info = test.info();
  const SHOP = 'Shop (staging, MariaDB)';
  const DEVICE = 'device-e2e-laptop-stepup';
  const db = run.stack.mariadb!;

  const first = await run.j.open('alice', { webauthnOrigin: true, signIn: 'direct', deviceId: DEVICE });
  const laptop = await virtualAuthenticator(first.page);
  await enrollPasskey(first.page, 'Alice laptop');
  await goTo(first.page, 'Request access');
  await first.page.getByRole('button', { name: SHOP }).click();
  await first.page.getByRole('dialog', { name: `Request access to ${SHOP}` }).getByRole('button', { name: 'Verify and connect' }).click();
  await first.page.getByRole('dialog', { name: 'Confirm it is you' }).getByTestId('stepup-passkey').click();
  await expect(first.page.getByText(`${SHOP} is ready`)).toBeVisible();
  const grantId = await liveGrantId(first.agent, 'staging-shop');
  const requestId = first.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
  const old = new URL((await first.agent.api.connectionUri({ grantId })).uri);
  const user = decodeURIComponent(old.username);
  const oldPassword = decodeURIComponent(old.password);
  // Straight to MariaDB with the grant's account and password, as whoever copied them could; a session left open.
  const copied = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password: oldPassword, database: 'shop' });
  copied.on('error', () => undefined);
  expect(await copied.query('SELECT 1 AS one').then(([rows]) => rows)).toEqual([{ one: 1 }]);
  // The laptop's passkey lives in its authenticator, not in Stint: it is there after the restart too.
  const { credentials } = await laptop.cdp.send('WebAuthn.getCredentials', { authenticatorId: laptop.authenticatorId });
  expect(credentials).toHaveLength(1);

  // Stint stops: its tunnel and keys are gone, and nobody told the server.
  await first.context.close();
  await first.host.close();
  await first.agent.dispose();

  const second = await run.j.open('alice', { webauthnOrigin: true, signIn: 'direct', deviceId: DEVICE });
  const same = await virtualAuthenticator(second.page);
  for (const credential of credentials) await same.cdp.send('WebAuthn.addCredential', { authenticatorId: same.authenticatorId, credential });

  // What the tray's Resume opens when the server asks for a step-up (desktop/main: view 'resume'): this grant's dialog.
  const trayWindow = new URL(second.host.url);
  trayWindow.search = new URLSearchParams({ view: 'resume', grantId, requestId }).toString();
  await second.page.goto(trayWindow.href);
  const stepUp = second.page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText(`Resume your read access to ${SHOP} with new keys`);
  await expect(stepUp.getByTestId('stepup-passkey')).toBeVisible();
  await shot(second.page, '01-tray-resume-stepup', info);
  await second.page.keyboard.press('Escape');
  await expect(stepUp).toBeHidden();
  // Dismissed: nothing was sent, the access still waits and the old password still works.
  const card = second.page.locator('li.grant', { hasText: SHOP });
  await expect(card).toContainText('Stint stopped while this access was active.');
  expect(await copied.query('SELECT 1 AS one').then(([rows]) => rows)).toEqual([{ one: 1 }]);

  // The Active view's Resume: the server asks for a step-up, the same dialog opens; the passkey confirms it.
  await card.getByRole('button', { name: `Resume ${SHOP}` }).click();
  await expect(stepUp).toContainText(`Resume your read access to ${SHOP} with new keys`);
  await shot(second.page, '02-active-resume-stepup', info);
  await stepUp.getByTestId('stepup-passkey').click();
  await expect(stepUp).toBeHidden();
  await expect(second.page.getByText('Resumed', { exact: true })).toBeVisible();
  await expect(card).not.toContainText('Stint stopped');
  await expect(card).toContainText(/127\.0\.0\.1:\d+/);
  await shot(second.page, '03-resumed', info);

  const fresh = new URL((await second.agent.api.connectionUri({ grantId })).uri);
  const through = await mysql.createConnection({ host: fresh.hostname, port: Number(fresh.port), user, password: decodeURIComponent(fresh.password), database: 'shop' });
  expect(await through.query('SELECT COUNT(*) AS n FROM products').then(([rows]) => rows)).toEqual([{ n: 5 }]);
  await through.end();
  // The old password: the session it had open was cut, and MariaDB refuses it.
  await expect(copied.query('SELECT 1')).rejects.toThrow();
  copied.destroy();
  await expect(mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password: oldPassword })).rejects.toThrow(/Access denied/);
  const rekeyed = (await auditAs(run.stack, 'carol', `&grantId=${grantId}`)).filter((e) => e.action === 'grant.rekeyed');
  expect(rekeyed).toEqual([expect.objectContaining({ actor: 'alice', detail: expect.objectContaining({ deviceId: DEVICE, stepUp: 'webauthn' }) })]);

  await card.getByRole('button', { name: `End access to ${SHOP} now` }).click();
  await second.page.getByRole('dialog', { name: `End access to ${SHOP} now?` }).getByRole('button', { name: 'End now' }).click();
  await expect(second.page.getByText('Ended by you')).toBeVisible();
});
