// The renderer against the real web host and a scripted agent: what the user sees and what the UI asks the agent
// to do. (The full-stack journey with the real agent core, server and WebAuthn is a separate spec.)
import { localProblem } from '../../shared/contract/problem';
import { ALICE, BOB, ScriptedAgent, resource, sampleResources } from './fixtures/scripted-agent';
import { activeId, expect, tabTo, test } from './fixtures/ui';

const signedIn = (user = ALICE) => new ScriptedAgent({ state: { session: { status: 'signed_in', user }, resources: sampleResources() } });

test('sign-in shows the browser step, can be cancelled, then lands on resources', async ({ page, openUi }) => {
  const agent = new ScriptedAgent();
  await openUi(agent);
  await expect(page.getByText('Sign in to stint.example.com to ask for access to databases and hosts.')).toBeVisible();

  const signInButton = page.getByRole('main').getByRole('button', { name: 'Sign in', exact: true });
  await signInButton.click();
  await expect(page.getByText('Finish signing in in your browser…')).toBeVisible();
  await page.getByRole('button', { name: 'Cancel sign-in' }).click();
  await expect(page.getByText('Sign-in was cancelled.')).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0); // cancelling is not an error
  expect(agent.calls.map((c) => c.method)).toEqual(['getState', 'getSettings', 'signIn', 'cancelSignIn']);

  await signInButton.click();
  await expect(page.getByRole('button', { name: 'Cancel sign-in' })).toBeVisible();
  agent.finishSignIn();
  await expect(page.getByText('Signed in as alice@example.com — stint.example.com')).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Request access' })).toBeVisible();
  await expect(page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Sign in' })).toHaveCount(0);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(signInButton).toBeVisible();
});

test('resources are grouped by environment with sensitivity and what each needs; search narrows them', async ({ page, openUi }) => {
  await openUi(signedIn());
  const groups = page.locator('section.group h3');
  await expect(groups).toHaveText(['Production', 'Staging']);
  const orders = page.locator('li.resource', { hasText: 'prod-orders' });
  await expect(orders).toContainText('high sensitivity');
  await expect(orders).toContainText('needs approval');
  await expect(orders).toContainText('from dba');
  const billing = page.locator('li.resource', { hasText: 'prod-billing' });
  await expect(billing).toContainText('step-up');
  await expect(billing).toContainText('from dba and sre-leads');
  await expect(page.locator('li.resource', { hasText: 'staging-users' })).toContainText('instant');

  await page.getByLabel('Search resources').fill('staging read');
  await expect(page.locator('li.resource')).toHaveCount(2);
  await expect(page.getByText('2 of 4 shown')).toBeVisible();
  await page.getByLabel('Search resources').fill('billing');
  await expect(page.locator('li.resource')).toHaveText([/prod-billing/]);
  await expect(groups).toHaveText(['Production']);
});

test('keyboard only: find a resource, fill the request form, submit — the agent gets exactly that', async ({ page, openUi }) => {
  const agent = signedIn();
  await openUi(agent);
  await expect(page.getByRole('heading', { name: 'Request access' })).toBeVisible();

  await tabTo(page, 'resource-search');
  await page.keyboard.type('orders');
  await page.keyboard.press('Tab');
  expect(await activeId(page)).toBe('request-prod-orders');
  await page.keyboard.press('Enter');

  const dialog = page.getByRole('dialog', { name: 'Request access to prod-orders' });
  await expect(dialog).toBeVisible();
  expect(await activeId(page)).toBe('request-reason'); // the reason field is focused
  await expect(dialog.getByRole('button', { name: 'Ask dba' })).toBeVisible();
  await expect(dialog.getByRole('button', { name: '1h', pressed: true })).toBeVisible(); // policy default first

  // Enter with no reason: told why, focus stays, nothing sent.
  await page.keyboard.press('Enter');
  await expect(dialog.getByText('Say why you need access')).toBeVisible();
  expect(await activeId(page)).toBe('request-reason');

  await page.keyboard.type('INC-4512 fix stuck orders');
  await page.keyboard.press('Tab');
  await page.keyboard.type('4512');
  await page.keyboard.press('Enter');
  await expect(dialog.getByText('That doesn’t look like a ticket here')).toBeVisible();
  expect(await activeId(page)).toBe('request-ticket');
  for (let i = 0; i < 4; i++) await page.keyboard.press('Backspace');
  await page.keyboard.type('INC-4512');

  await page.keyboard.press('Tab'); // 15m
  await page.keyboard.press('Tab'); // 1h
  await page.keyboard.press('Tab'); // 4h
  await page.keyboard.press('Enter');
  await expect(dialog.getByRole('button', { name: '4h', pressed: true })).toBeVisible();
  await page.keyboard.press('Tab');
  expect(await activeId(page)).toBe('request-level');
  await page.keyboard.type('w');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');

  await expect(dialog).toBeHidden();
  expect(agent.callsTo('createRequest')).toEqual([{
    resourceId: 'prod-orders', level: 'write', durationSeconds: 4 * 3600, reason: 'INC-4512 fix stuck orders',
    ticket: 'INC-4512', breakGlass: false, connect: true,
  }]);
  await expect(page.getByRole('heading', { name: 'Waiting' })).toBeVisible();
  await expect(page.getByText('0 of 1 approval — waiting for dba')).toBeVisible();
  await expect(page.getByText('Asked dba')).toBeVisible();
});

test('an instant resource (opened from the tray link) connects at once and shows the grant with its tunnel', async ({ page, openUi }) => {
  const agent = signedIn();
  await openUi(agent, '?view=request&resourceId=staging-users'); // what the tray's "Request access" item opens
  const dialog = page.getByRole('dialog', { name: 'Request access to staging-users' });
  await expect(dialog.getByText('Access level: read')).toBeVisible();
  await dialog.getByRole('button', { name: 'Connect now' }).click();
  await expect(page.getByText('staging-users is ready')).toBeVisible();
  await expect(page.getByText('127.0.0.1:15432, 1h')).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Active' })).toBeVisible();
  await expect(page.getByRole('timer')).toHaveText('1h 00m');
  expect(agent.callsTo('createRequest')[0]).toMatchObject({ resourceId: 'staging-users', level: 'read', durationSeconds: 3600, reason: '' });
});

test('step-up resources say so on the button and open verification after the request', async ({ page, openUi }) => {
  const agent = signedIn();
  await openUi(agent);
  await page.getByRole('button', { name: 'staging-analytics' }).click();
  const dialog = page.getByRole('dialog', { name: 'Request access to staging-analytics' });
  // Presets clipped to the policy maximum (30m): only 15m, and 15m is the default.
  await expect(dialog.locator('.choice')).toHaveText(['15m']);
  await dialog.getByRole('button', { name: 'Verify and connect' }).click();
  const stepUp = page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText('Request read access to staging-analytics for 15m');
  // The scripted challenge allows a one-time code only: no passkey button, a code field.
  await expect(stepUp.getByTestId('stepup-passkey')).toHaveCount(0);
  expect(agent.callsTo('stepUpChallenge')).toEqual([{ action: { kind: 'request', requestId: agent.current.requests[0]!.id } }]);
  expect(agent.current.requests[0]?.state).toBe('pending_stepup');
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await page.getByRole('button', { name: /^Waiting/ }).click();
  await expect(page.getByText('Waiting for you to verify it’s you.')).toBeVisible();
  await page.getByRole('button', { name: 'Cancel request for staging-analytics' }).click();
  await expect(page.getByText('Nothing is waiting.')).toBeVisible();
  expect(agent.callsTo('cancelRequest')).toEqual([{ requestId: agent.current.requests[0]!.id }]);
});

test('the countdown runs live: 1h 05m, then 1h 04m, then 0:59', async ({ page, openUi }) => {
  const t0 = Date.parse('2030-01-01T12:00:00Z');
  await page.clock.install({ time: t0 });
  const agent = new ScriptedAgent({ now: () => t0, state: { session: { status: 'signed_in', user: ALICE }, resources: sampleResources() } });
  agent.setState({ grants: [agent.grant({ resourceId: 'prod-orders', level: 'write' }, 65 * 60_000)] });
  await openUi(agent, '?view=active');
  const timer = page.getByRole('timer');
  await expect(timer).toHaveText('1h 05m');
  await page.clock.fastForward(60_000);
  await expect(timer).toHaveText('1h 04m');
  await page.clock.fastForward('01:03:00');
  await expect(timer).toHaveText('0:59');
  await page.clock.fastForward(1_000);
  await expect(timer).toHaveText('0:58');
});

test('active grant: copy the psql command, reveal the password, open psql, extend, end now (Esc closes a dialog and focus returns)', async ({ page, context, openUi }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const agent = signedIn();
  const local = agent.grant({ resourceId: 'prod-orders', level: 'write' }, 42 * 60_000, 15433);
  agent.setState({ grants: [{ ...local, tunnel: { ...local.tunnel!, preferredPort: 15432, message: 'Port 15432 is in use by another program — using 15433 for this grant.' } }] });
  await openUi(agent, '?view=active');
  await expect(page.getByRole('timer')).toHaveText('42m');
  await expect(page.getByText('127.0.0.1:15433')).toBeVisible();
  await expect(page.getByText('Port 15432 is in use by another program — using 15433 for this grant.')).toBeVisible();

  // The psql command goes to the browser's own clipboard (the web host has no other); it holds no password.
  await page.getByRole('button', { name: 'Copy psql command for prod-orders' }).click();
  await expect(page.getByText('psql command copied')).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(local.tunnel!.command);
  await expect(page.getByText('stint_alice', { exact: true })).toBeVisible();
  // The password only on an explicit reveal.
  await expect(page.getByText('scripted-password')).toHaveCount(0);
  await page.getByRole('button', { name: 'Reveal the password for prod-orders' }).click();
  await expect(page.getByLabel('Password for prod-orders')).toHaveText('scripted-password');
  expect(agent.callsTo('revealPassword')).toEqual([{ grantId: local.grant.id }]);
  await page.getByRole('button', { name: 'Open prod-orders in psql' }).click();
  await expect.poll(() => agent.callsTo('openPsql')).toEqual([{ grantId: local.grant.id }]);

  const extend = page.getByRole('button', { name: 'Extend prod-orders' });
  await extend.click();
  await expect(page.getByRole('dialog', { name: 'Extend prod-orders' })).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(extend).toBeFocused();
  await extend.click();
  const dialog = page.getByRole('dialog', { name: 'Extend prod-orders' });
  await dialog.getByRole('button', { name: '+1h' }).click();
  await dialog.getByRole('button', { name: 'Extend by 1h' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('main').getByRole('timer')).toHaveText('1h 42m');
  expect(agent.callsTo('extend')).toEqual([{ grantId: local.grant.id, durationSeconds: 3600 }]);

  await page.getByRole('button', { name: 'End access to prod-orders now' }).click();
  await page.getByRole('dialog', { name: 'End access to prod-orders now?' }).getByRole('button', { name: 'End now' }).click();
  await expect(page.getByText('No active access.')).toBeVisible();
  await expect(page.getByText('Ended by you')).toBeVisible();
  expect(agent.callsTo('release')).toEqual([{ grantId: local.grant.id }]);
});

test('a grant left from before (Stint stopped while it was active): Resume takes it back, with a step-up where policy asks; End asks first', async ({ page, openUi }) => {
  const agent = signedIn();
  const left = agent.leftOver({ resourceId: 'staging-users' }, 40 * 60_000);
  const guarded = agent.leftOver({ resourceId: 'prod-billing' }, 50 * 60_000);
  const ending = agent.leftOver({ resourceId: 'prod-orders' }, 55 * 60_000);
  agent.setState({ grants: [left, guarded, ending] });
  await openUi(agent, '?view=active');
  const card = page.locator('li.card', { hasText: 'staging-users' });
  await expect(card).toContainText('Stint stopped while this access was active.');
  await expect(card.getByRole('timer')).toHaveText('40m');
  await expect(card.getByRole('button', { name: 'Connect to staging-users' })).toHaveCount(0);
  await expect(card.getByRole('button', { name: 'Extend staging-users' })).toHaveCount(0);

  await card.getByRole('button', { name: 'Resume staging-users' }).click();
  await expect(page.getByText('staging-users resumed')).toBeVisible();
  await expect(card).not.toContainText('Stint stopped');
  await expect(card.getByText('127.0.0.1:15432')).toBeVisible();
  await expect(card.getByRole('button', { name: 'Open staging-users in psql' })).toBeVisible();
  expect(agent.callsTo('resumeGrant')).toEqual([{ grantId: left.grant.id }]);

  // The policy asked its request for a step-up: taking it back verifies first, bound to the grant's request.
  await page.locator('li.card', { hasText: 'prod-billing' }).getByRole('button', { name: 'Resume prod-billing' }).click();
  const stepUp = page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(stepUp).toContainText('Resume your read access to prod-billing with new keys');
  await expect.poll(() => agent.callsTo('stepUpChallenge').at(-1)).toEqual({ action: { kind: 'request', requestId: guarded.grant.requestId } });
  await stepUp.getByLabel('Code from your authenticator app').fill('123456');
  await stepUp.getByRole('button', { name: 'Confirm with code' }).click();
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(page.getByText('Resumed', { exact: true })).toBeVisible();
  expect(agent.callsTo('resumeGrant').at(-1)).toMatchObject({ grantId: guarded.grant.id, stepUp: { method: 'totp', code: '123456' } });
  await expect(page.locator('li.card', { hasText: 'prod-billing' })).not.toContainText('Stint stopped');

  // End gives it up, after asking.
  await page.getByRole('button', { name: 'End access to prod-orders now' }).click();
  await page.getByRole('dialog', { name: 'End access to prod-orders now?' }).getByRole('button', { name: 'End now' }).click();
  await expect(page.getByText('Ended by you')).toBeVisible();
  expect(agent.callsTo('release')).toEqual([{ grantId: ending.grant.id }]);
});

test('approvals: see who, what, why and the risk; approve; deny needs a reason; step-up policy routes to verification', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: BOB }, resources: sampleResources() } });
  const risky = agent.request({
    resourceId: 'prod-orders', level: 'write', durationSeconds: 3600, reason: 'INC-4512 fix stuck orders', ticket: 'INC-4512',
    risk: { score: 82, reasons: ['new device', 'outside working hours'] }, approvalsNeeded: [{ group: 'dba', count: 1, have: 0 }],
  });
  const easy = agent.request({ resourceId: 'staging-users', requester: 'erin', requesterName: 'Erin', reason: 'debug signup' });
  const third = agent.request({ resourceId: 'staging-analytics', requester: 'dave', requesterName: 'Dave', reason: 'report' });
  agent.setState({ approvals: [risky, easy, third] });
  await openUi(agent, '?view=approvals');

  const card = page.locator('li.approval', { hasText: 'Alice → prod-orders' });
  await expect(card.getByRole('heading')).toHaveText('Alice → prod-orders · write · 1h');
  await expect(card).toContainText('“INC-4512 fix stuck orders”');
  await expect(card).toContainText('INC-4512');
  await expect(card).toContainText('high · 82/100');
  await expect(card.getByRole('list', { name: 'Why' }).getByRole('listitem')).toHaveText(['new device', 'outside working hours']);
  await expect(page.getByRole('button', { name: /^Approvals/ })).toContainText('3');

  // Policy says approving prod-orders needs step-up: the approve call is not made without it.
  await card.getByRole('button', { name: 'Approve Alice’s request for prod-orders' }).click();
  await page.getByRole('dialog', { name: 'Approve Alice’s request?' }).getByRole('button', { name: 'Verify and approve' }).click();
  await expect(page.getByRole('dialog', { name: 'Confirm it is you' })).toContainText('Approve Alice’s write access to prod-orders for 1h');
  expect(agent.callsTo('approve')).toEqual([]);
  await page.keyboard.press('Escape');

  await page.getByRole('button', { name: 'Approve Erin’s request for staging-users' }).click();
  const approve = page.getByRole('dialog', { name: 'Approve Erin’s request?' });
  await approve.getByLabel('Comment (optional)').fill('ok for today');
  await approve.getByRole('button', { name: 'Approve', exact: true }).click();
  await expect(page.getByText('Approved Erin’s request')).toBeVisible();
  expect(agent.callsTo('approve')).toEqual([{ requestId: easy.id, comment: 'ok for today' }]);

  await page.getByRole('button', { name: 'Deny Dave’s request for staging-analytics' }).click();
  const deny = page.getByRole('dialog', { name: 'Deny Dave’s request?' });
  await deny.getByRole('button', { name: 'Deny', exact: true }).click();
  await expect(deny.getByText('Say why — Dave sees this.')).toBeVisible();
  await expect(deny.getByLabel('Reason (required)')).toBeFocused();
  expect(agent.callsTo('deny')).toEqual([]);
  await page.keyboard.type('use the read replica');
  await page.keyboard.press('Enter');
  await expect(page.getByText('Denied Dave’s request')).toBeVisible();
  expect(agent.callsTo('deny')).toEqual([{ requestId: third.id, reason: 'use the read replica' }]);
  await expect(page.locator('li.approval')).toHaveCount(1);
});

test('settings load, validate and save what the user chose', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({
    state: { session: { status: 'signed_in', user: ALICE }, resources: [resource('prod-orders', 'production'), resource('staging-users', 'staging')] },
    settings: { ports: { 'staging-users': 16000 } },
  });
  await openUi(agent, '?view=settings');
  await expect(page.getByLabel('Server address')).toHaveValue('https://stint.example.com');
  await expect(page.getByLabel('Port for staging-users')).toHaveValue('16000');

  await page.getByLabel('Server address').fill('https://stint.corp.example');
  await page.getByLabel('Default duration').selectOption({ label: '15m' });
  // Every kind's client (psql, mariadb, ssh), not only psql.
  await expect(page.getByLabel('When access is ready').locator('option')).toHaveText(['Open the client', 'Copy the connection URI']);
  await page.getByLabel('When access is ready').selectOption({ label: 'Copy the connection URI' });
  await page.getByLabel('Port for prod-orders').fill('80');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByText('A port from 1024 to 65535, or empty for automatic')).toBeVisible();
  expect(agent.callsTo('updateSettings')).toEqual([]);

  await page.getByLabel('Port for prod-orders').fill('15999');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByText('Settings saved.')).toBeVisible();
  // (The web host parses the patch with the contract's SettingsPatch, which adds its defaults, e.g. clientId.)
  expect(agent.callsTo('updateSettings')).toMatchObject([{
    serverUrl: 'https://stint.corp.example', defaultDurationSeconds: 900, preferredClient: 'uri',
    ports: { 'staging-users': 16000, 'prod-orders': 15999 },
  }]);
});

test('notifications become toasts with their actions, problems become dismissible alerts, stale snapshots are ignored', async ({ page, openUi }) => {
  const agent = signedIn();
  const local = agent.grant({ resourceId: 'prod-orders', level: 'write' }, 3600_000);
  agent.setState({ grants: [local] });
  await openUi(agent, '?view=active');
  await expect(page.getByRole('timer')).toHaveText('1h 00m');

  agent.notify({ id: 'n1', kind: 'approved', title: 'prod-orders is ready', body: '127.0.0.1:15432, 1h', actions: ['open_psql', 'copy_uri'], grantId: local.grant.id });
  const toast = page.locator('.toast', { hasText: 'prod-orders is ready' });
  await expect(toast).toContainText('127.0.0.1:15432, 1h');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
  await toast.getByRole('button', { name: 'Copy psql command' }).click();
  await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(local.tunnel!.command);
  await expect(toast).toHaveCount(0);

  agent.emit({ type: 'problem', problem: localProblem('server_unreachable', 'The server can’t be reached — your active access still ends on time.') });
  const alert = page.getByRole('alert').filter({ hasText: 'The server can’t be reached' });
  await expect(alert).toBeVisible();
  await alert.getByRole('button', { name: /Dismiss/ }).click();
  await expect(alert).toHaveCount(0);

  // An older snapshot (without the grant) arriving late must not replace the newer one. Events are ordered on the
  // socket, so once the toast after it shows, the stale snapshot has been seen.
  agent.emit({ type: 'state', state: { ...agent.current, version: agent.current.version - 1, grants: [] } });
  agent.notify({ id: 'n2', kind: 'expiring', title: 'prod-orders ends in 5 minutes', body: '', actions: ['extend'], grantId: local.grant.id });
  await expect(page.getByText('prod-orders ends in 5 minutes')).toBeVisible();
  await expect(page.getByRole('timer')).toHaveText('1h 00m');

  agent.setState({ server: { ...agent.current.server, status: 'offline' } });
  await expect(page.locator('.banner')).toHaveText('The server can’t be reached — your active access still ends on time.');
});

test('toasts: dismissed by hand; an approval asked goes once decided; a plain toast after 8 s; ending-soon once extended', async ({ page, openUi }) => {
  const t0 = Date.parse('2030-01-01T12:00:00Z');
  await page.clock.install({ time: t0 });
  const agent = new ScriptedAgent({ now: () => t0, state: { session: { status: 'signed_in', user: BOB }, resources: sampleResources() } });
  const asked = agent.request({ resourceId: 'staging-users', requester: 'erin', requesterName: 'Erin', reason: 'debug signup' });
  const local = agent.grant({ resourceId: 'prod-orders', owner: 'bob' }, 5 * 60_000);
  agent.setState({ approvals: [asked], grants: [{ ...local, warnedMinutes: 5 }] });
  await openUi(agent, '?view=approvals');
  await expect(page.locator('li.approval')).toHaveCount(1);
  const toasts = page.locator('.toast');

  agent.notify({ id: 'denied:r9', kind: 'denied', title: 'Request denied', body: 'prod-billing was denied', actions: ['open'], requestId: 'req-9' });
  await page.getByRole('button', { name: 'Dismiss: Request denied' }).click();
  await expect(page.getByText('Request denied')).toHaveCount(0);

  agent.notify({ id: `approval_asked:${asked.id}`, kind: 'approval_asked', title: 'Approval asked', body: 'Erin wants read on staging-users for 1h', actions: ['approve', 'deny'], requestId: asked.id });
  agent.notify({ id: `expiring:${local.grant.id}`, kind: 'expiring', title: 'Access ending soon', body: 'prod-orders ends in 5 minutes', actions: ['extend'], grantId: local.grant.id });
  await expect(toasts).toHaveText([/Approval asked/, /Access ending soon/]);
  await page.clock.fastForward(60_000); // neither has a time limit: each lasts as long as what it says is true
  await expect(toasts).toHaveText([/Approval asked/, /Access ending soon/]);

  // Approved here (or anywhere): the request leaves the approvals, so its toast goes; the "Approved" toast comes.
  await page.getByRole('button', { name: 'Approve Erin’s request for staging-users' }).click();
  await page.getByRole('dialog', { name: 'Approve Erin’s request?' }).getByRole('button', { name: 'Approve', exact: true }).click();
  await expect(toasts).toHaveText([/Access ending soon/, /Approved Erin’s request/]);
  await page.mouse.move(0, 0); // not pointing at the toasts (that holds them)
  await page.clock.fastForward(5_000);
  await expect(toasts.filter({ hasText: 'Approved Erin’s request' })).toBeVisible();
  await page.clock.fastForward(4_000);
  await expect(toasts).toHaveText([/Access ending soon/]);

  // Extended by an hour: the agent publishes it as no longer ending soon (the warning no longer stands).
  const { warnedMinutes: _warned, ...stillLive } = agent.current.grants[0]!;
  const extended = { ...stillLive, localEndsAt: new Date(t0 + 65 * 60_000).toISOString() };
  agent.setState({ grants: [extended] });
  await expect(toasts).toHaveCount(0);
});

test('toasts belong to the signed-in user: gone when someone else signs in, and on sign-out', async ({ page, openUi }) => {
  const agent = signedIn();
  await openUi(agent);
  await expect(page.getByRole('heading', { name: 'Request access' })).toBeVisible();
  const toasts = page.locator('.toast');
  agent.notify({ id: 'denied:req-1', kind: 'denied', title: 'Request denied', body: 'prod-orders was denied: not today', actions: ['open'], requestId: 'req-1' });
  agent.notify({ id: 'approval_asked:req-2', kind: 'approval_asked', title: 'Approval asked', body: 'Dave wants read on prod-orders', actions: ['approve', 'deny'], requestId: 'req-2' });
  await expect(toasts).toHaveCount(2);

  agent.setState({ session: { status: 'signed_in', user: BOB } });
  await expect(page.getByText('Signed in as bob@example.com')).toBeVisible();
  await expect(toasts).toHaveCount(0);

  agent.notify({ id: 'denied:req-3', kind: 'denied', title: 'Request denied', body: 'prod-billing was denied', actions: ['open'], requestId: 'req-3' });
  await expect(toasts).toHaveCount(1);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByText('Signed out — stint.example.com')).toBeVisible();
  await expect(toasts).toHaveCount(0);
});

test('signed out is not "Offline": no server status and no offline banner until signed in', async ({ page, openUi }) => {
  const agent = new ScriptedAgent({ state: { server: { url: 'https://stint.example.com', status: 'offline', clockOffsetMs: 0 } } });
  await openUi(agent);
  await expect(page.getByText('Signed out — stint.example.com')).toBeVisible();
  await expect(page.locator('.server-status')).toHaveCount(0);
  await expect(page.getByText('Offline')).toHaveCount(0);
  await expect(page.locator('.banner')).toHaveCount(0);

  await page.getByRole('main').getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.locator('.server-status')).toHaveCount(0); // signing in: still nothing to say about the server
  agent.finishSignIn();
  await expect(page.locator('.server-status')).toHaveText('Offline');
  await expect(page.locator('.banner')).toHaveText('The server can’t be reached — your active access still ends on time.');
  agent.setState({ server: { ...agent.current.server, status: 'online' } });
  await expect(page.locator('.server-status')).toHaveText('Online');
  await expect(page.locator('.banner')).toHaveCount(0);
});

/** Record the page's Notification calls and let the spec say whether the page is hidden. */
async function recordNotifications(page: import('@playwright/test').Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __notes: unknown[]; __asked: number; __hidden: boolean; Notification: typeof Notification };
    w.__notes = [];
    w.__asked = 0;
    w.__hidden = false;
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (w.__hidden ? 'hidden' : 'visible') });
    const Real = window.Notification;
    class Recorded extends Real {
      constructor(title: string, options?: NotificationOptions) {
        w.__notes.push({ title, body: options?.body, tag: options?.tag });
        super(title, options);
      }
      static override requestPermission(): Promise<NotificationPermission> {
        w.__asked++;
        return Real.requestPermission();
      }
    }
    w.Notification = Recorded;
  });
}

test('web host: desktop notifications are offered after the first request, then shown while the page is hidden', async ({ page, context, openUi }) => {
  await recordNotifications(page);
  const agent = signedIn();
  await openUi(agent);
  await expect(page.getByRole('heading', { name: 'Request access' })).toBeVisible();
  const offer = page.getByRole('region', { name: 'Get desktop notifications?' });
  await expect(offer).toHaveCount(0); // not on page load

  await page.getByRole('button', { name: 'staging-users' }).click();
  await page.getByRole('dialog', { name: 'Request access to staging-users' }).getByRole('button', { name: 'Connect now' }).click();
  await expect(offer).toBeVisible();
  await page.screenshot({ path: test.info().outputPath('desktop-offer.png') });
  await context.grantPermissions(['notifications']); // what the browser's own prompt would do on "Allow"
  await offer.getByRole('button', { name: 'Turn on' }).click();
  await expect(offer).toHaveCount(0);
  await expect(page.getByText('Desktop notifications are on')).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __asked: number }).__asked)).toBe(1);

  const grantId = agent.current.grants[0]!.grant.id;
  // Looking at the page: the toast is enough.
  agent.notify({ id: `expiring:${grantId}`, kind: 'expiring', title: 'Access ending soon', body: 'staging-users ends in 5 minutes', actions: ['extend'], grantId });
  await expect(page.locator('.toast', { hasText: 'Access ending soon' })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes)).toEqual([]);

  // In the background: the OS shows it too, tagged so a newer one with the same id replaces it.
  await page.evaluate(() => { (window as unknown as { __hidden: boolean }).__hidden = true; });
  agent.notify({ id: `expiring:${grantId}`, kind: 'expiring', title: 'Access ending soon', body: 'staging-users ends in 1 minute', actions: ['extend'], grantId });
  await expect.poll(() => page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes))
    .toEqual([{ title: 'Access ending soon', body: 'staging-users ends in 1 minute', tag: `expiring:${grantId}` }]);
});

test('web host: "Not now" to desktop notifications (offered at the first approval asked) is not asked again', async ({ page, openUi }) => {
  await recordNotifications(page);
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_in', user: BOB }, resources: sampleResources() } });
  const first = agent.request({ resourceId: 'staging-users', requester: 'erin', requesterName: 'Erin' });
  await openUi(agent, '?view=approvals');
  const offer = page.getByRole('region', { name: 'Get desktop notifications?' });
  await expect(page.getByRole('heading', { name: 'Approvals' })).toBeVisible();
  await expect(offer).toHaveCount(0);

  agent.setState({ approvals: [first] });
  agent.notify({ id: `approval_asked:${first.id}`, kind: 'approval_asked', title: 'Approval asked', body: 'Erin wants read on staging-users', actions: ['approve', 'deny'], requestId: first.id });
  await expect(offer).toBeVisible();
  await offer.getByRole('button', { name: 'Not now' }).click();
  await expect(offer).toHaveCount(0);

  const second = agent.request({ resourceId: 'prod-orders', requester: 'dave', requesterName: 'Dave' });
  agent.setState({ approvals: [first, second] });
  agent.notify({ id: `approval_asked:${second.id}`, kind: 'approval_asked', title: 'Approval asked', body: 'Dave wants read on prod-orders', actions: ['approve', 'deny'], requestId: second.id });
  await expect(page.locator('.toast')).toHaveCount(2);
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Approvals' })).toBeVisible();
  agent.notify({ id: `approval_asked:${second.id}`, kind: 'approval_asked', title: 'Approval asked', body: 'Dave wants read on prod-orders', actions: ['approve', 'deny'], requestId: second.id });
  await expect(page.locator('.toast')).toHaveCount(1);
  await expect(offer).toHaveCount(0);
  expect(await page.evaluate(() => (window as unknown as { __asked: number }).__asked)).toBe(0);
});

test('sign-in service: server, issuer, client ID and audience are saved together; a refusal keeps what was typed and says why', async ({ page, openUi }) => {
  const agent = new ScriptedAgent();
  // The real agent checks the issuer's discovery document; scripted here: a trailing slash is another issuer.
  agent.refuseSettings = (patch) => (patch.issuer === 'https://login.corp.example/'
    ? 'https://login.corp.example/’s discovery document says its issuer is https://login.corp.example, not https://login.corp.example/. Nothing was saved.'
    : undefined);
  await openUi(agent, '?view=settings');
  const group = page.getByRole('group', { name: 'Sign-in service' });
  await expect(group.getByLabel('Server address')).toHaveValue('https://stint.example.com');
  await expect(group.getByLabel('Client ID')).toHaveValue('stint-agent');
  await expect(group.getByText('usually stint-agent')).toBeVisible();

  await group.getByLabel('Server address').fill('https://stint.corp.example');
  await group.getByLabel('Sign-in address (issuer)').fill('https://login.corp.example/');
  await group.getByLabel('Client ID').fill('stint-desktop');
  await page.getByRole('button', { name: 'Save settings' }).click();
  // Half a sign-in service is caught in the form: nothing is sent.
  await expect(group.getByText('Signing in needs the API audience as well as the sign-in service.')).toBeVisible();
  await expect(group.getByLabel('API audience')).toHaveAttribute('aria-invalid', 'true');
  expect(agent.callsTo('updateSettings')).toEqual([]);

  await group.getByLabel('API audience').fill('https://stint.corp.example/api');
  await page.getByRole('button', { name: 'Save settings' }).click();
  const refusal = page.getByRole('alert').filter({ hasText: 'discovery document says its issuer is https://login.corp.example, not https://login.corp.example/' });
  await expect(refusal).toBeVisible();
  await expect(refusal).toContainText('Nothing was saved.');
  // What the user typed stays, to be fixed rather than typed again; the agent kept nothing.
  await expect(group.getByLabel('Server address')).toHaveValue('https://stint.corp.example');
  await expect(group.getByLabel('Sign-in address (issuer)')).toHaveValue('https://login.corp.example/');
  await expect(group.getByLabel('Client ID')).toHaveValue('stint-desktop');
  await expect(group.getByLabel('API audience')).toHaveValue('https://stint.corp.example/api');
  expect((await agent.api.getSettings({})).issuer).toBeUndefined();

  await group.getByLabel('Sign-in address (issuer)').fill('https://login.corp.example');
  await expect(refusal).toHaveCount(0);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByText('Settings saved.')).toBeVisible();
  const sent = { serverUrl: 'https://stint.corp.example', clientId: 'stint-desktop', audience: 'https://stint.corp.example/api' };
  expect(agent.callsTo('updateSettings')).toMatchObject([{ ...sent, issuer: 'https://login.corp.example/' }, { ...sent, issuer: 'https://login.corp.example' }]);
  expect(await agent.api.getSettings({})).toMatchObject({ ...sent, issuer: 'https://login.corp.example' });
  await expect(group.getByLabel('Sign-in address (issuer)')).toHaveValue('https://login.corp.example');
});

test('after signing out, the page offers to end the sign-in service\'s own session too (not behind the user\'s back)', async ({ page, openUi }) => {
  const endSessionUrl = 'https://login.example.com/session/end?id_token_hint=eyJhbGciOi.x.y';
  const agent = new ScriptedAgent({ state: { session: { status: 'signed_out', endSessionUrl } } });
  await openUi(agent);
  const link = page.getByRole('link', { name: 'Sign out of your company’s sign-in service too' });
  await expect(link).toHaveAttribute('href', endSessionUrl);
  await expect(link).toHaveAttribute('target', '_blank');
});

// Walkthrough: words a newcomer met that no longer matched the product (SSH hosts beside databases; an admin's trail).
test('a signed-in user with nothing to request is told so (not "sign in"), and an admin\'s History says whose trail it is', async ({ page, openUi }) => {
  const nothing = new ScriptedAgent({ state: { session: { status: 'signed_in', user: ALICE }, resources: [] } });
  await openUi(nothing);
  await expect(page.getByText('Nothing is available for you to request yet.')).toBeVisible();
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'Settings' }).click();
  await expect(page.getByText('Nothing is available for you to request yet.')).toBeVisible();
  await expect(page.getByText('Sign in to see')).toHaveCount(0);

  const carol = new ScriptedAgent({ state: { session: { status: 'signed_in', user: { ...BOB, sub: 'carol', email: 'carol@example.com', name: 'Carol', admin: true } }, resources: sampleResources() } });
  carol.auditEntries.push({ seq: 1, at: new Date(Date.now() - 60_000).toISOString(), actor: 'alice', subject: 'alice', action: 'request.created', resourceId: 'staging-users', reason: 'check signups', prevHash: '0'.repeat(64), hash: 'a'.repeat(64) });
  await openUi(carol);
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: 'History' }).click();
  await expect(page.getByText('Everyone’s audit trail (you are an administrator)')).toBeVisible();
});
