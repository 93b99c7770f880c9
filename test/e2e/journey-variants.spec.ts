// The other journeys on the real stack, each its own test: extension within policy; admin revoke in the middle of a
// running query; denial with a reason; a pending request that expires; break-glass; the deadline ending access
// (tunnel closed, running session killed, credentials wiped). Two extra demo resources make the timed cases quick:
// `Quick (staging)` (10-second grants, instant) and `Reports (production)` (asks sre-leads; requests expire in 8s).
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { startStack, type Stack } from '../harness/stack';
import {
  auditAs, connect, enrollPasskey, enrollTotp, goTo, journey, liveGrantId, psql, serverPost, shot, totpCode, verifyChain,
  virtualAuthenticator, type Journey, type UiUser,
  test, expect,
} from './fixtures/stack';

/** Adds the two quick resources (copies of the demo's, on the same databases) and their policies. */
function quickResources(yaml: string): string {
  // One resource's lines: from its `- id:` to the next resource's, or to `policies:` after the last one.
  const block = (id: string) => {
    const start = yaml.indexOf(`  - id: ${id}\n`);
    const next = yaml.indexOf('\n  - id: ', start + 1);
    const policies = yaml.indexOf('policies:', start);
    return yaml.slice(start, next !== -1 && next < policies ? next + 1 : policies);
  };
  const quick = block('staging-users')
    .replace('id: staging-users', 'id: staging-quick').replace('name: Users (staging)', 'name: Quick (staging)')
    .replace('policy: staging-self-service', 'policy: quick');
  const reports = block('prod-orders')
    .replace('id: prod-orders', 'id: prod-reports').replace('name: Orders (production)', 'name: Reports (production)')
    .replace('policy: production-db', 'policy: review');
  const policies = `  quick:
    requesters: [engineers]
    duration: { default: 10s, max: 10s }
    autoApprove: { when: { riskBelow: 101 } }
  review:
    requesters: [engineers]
    duration: { default: 1h, max: 4h }
    reason: required
    requestTtl: 8s
    approvals:
      - { from: sre-leads, count: 1 }
`;
  return yaml.replace('policies:\n', `${quick}${reports}policies:\n`) + policies;
}

let stack: Stack;
let j: Journey;
let alice: UiUser;
let dave: UiUser | undefined;
let daveSecret: string | undefined;
let alicePasskey = false;

test.beforeAll(async ({ browser }) => {
  test.setTimeout(120_000);
  stack = await startStack({ editConfig: quickResources });
  j = journey(stack, browser);
  alice = await j.open('alice', { webauthnOrigin: true, signIn: 'direct' });
  await expect(alice.page.getByText('Signed in as alice@example.com')).toBeVisible();
});

test.afterAll(async () => {
  await j?.close();
  await stack?.stop();
});

async function daveUi(): Promise<{ dave: UiUser; secret: string }> {
  if (!dave) {
    dave = await j.open('dave', { signIn: 'direct' });
    await expect(dave.page.getByText('Signed in as dave@example.com')).toBeVisible();
  }
  if (!daveSecret) daveSecret = await enrollTotp(dave.page);
  return { dave, secret: daveSecret };
}

async function ensurePasskey(): Promise<void> {
  if (alicePasskey) return;
  await virtualAuthenticator(alice.page);
  await enrollPasskey(alice.page, 'Alice laptop');
  alicePasskey = true;
}

/** Request access → resource → (fill) → primary button. */
async function request(u: UiUser, resourceName: string, button: string, fill?: { reason?: string; level?: string; breakGlass?: boolean }): Promise<void> {
  await goTo(u.page, 'Request access');
  await u.page.getByRole('button', { name: resourceName, exact: true }).click();
  const form = u.page.getByRole('dialog', { name: `Request access to ${resourceName}` });
  if (fill?.breakGlass) await form.getByLabel(/Emergency \(break glass\)/).check();
  if (fill?.reason) await form.getByLabel(/^Reason/).fill(fill.reason);
  if (fill?.level) await form.getByLabel('Access level').selectOption(fill.level);
  await form.getByRole('button', { name: button }).click();
}

async function endAll(u: UiUser): Promise<void> {
  for (const g of u.agent.state().grants.filter((x) => x.localState === 'active')) await u.agent.api.release({ grantId: g.grant.id }).catch(() => undefined);
}

test('extension within policy: +1h on a running staging grant, no re-approval', async () => {
  const info = test.info();
  const USERS = 'Users (staging)';
  try {
    await request(alice, USERS, 'Connect now');
    const grantId = await liveGrantId(alice.agent, 'staging-users');
    const card = alice.page.locator('li.grant', { hasText: USERS });
    await expect(card.getByRole('timer')).toHaveText(/^(1h 59m|2h 00m)$/);
    await alice.page.getByRole('button', { name: `Extend ${USERS}` }).click();
    const dialog = alice.page.getByRole('dialog', { name: `Extend ${USERS}` });
    await expect(dialog.locator('.choice')).toHaveText(['+15m', '+1h', '+4h']); // 12h allowance minus the 2h granted
    await dialog.getByRole('button', { name: '+1h' }).click();
    await dialog.getByLabel('Reason').fill('migration runs long');
    await shot(alice.page, '01-extend-dialog', info);
    await dialog.getByRole('button', { name: 'Extend by 1h' }).click();
    await expect(dialog).toBeHidden();
    await expect(card.getByRole('timer')).toHaveText(/^(2h 59m|3h 00m)$/);
    await shot(alice.page, '02-extended', info);
    const g = alice.agent.state().grants.find((x) => x.grant.id === grantId)!.grant;
    expect(Date.parse(g.endsAt) - Date.parse(g.startsAt)).toBe(3 * 3600_000);
    // The tunnel kept working across the extension.
    const { uri } = await alice.agent.api.connectionUri({ grantId });
    expect(await psql(uri, 'select count(*) from users')).toBe('25');
    const audit = await auditAs(stack, 'carol', `&grantId=${grantId}`);
    expect(audit.find((e) => e.action === 'grant.extended')).toMatchObject({ actor: 'alice', reason: 'migration runs long', detail: { seconds: 3600 } });
  } finally {
    await endAll(alice);
  }
});

test('admin revoke in the middle of a running query: the query is killed, the UI says revoked and why', async () => {
  const info = test.info();
  const USERS = 'Users (staging)';
  try {
    await request(alice, USERS, 'Connect now');
    const grantId = await liveGrantId(alice.agent, 'staging-users');
    const { uri } = await alice.agent.api.connectionUri({ grantId });
    const db = await connect(uri);
    const running = db.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);
    await shot(alice.page, '01-active-query-running', info);

    const revoked = await serverPost(stack, 'carol', `/v1/grants/${grantId}/revoke`, { reason: 'incident closed' });
    expect(revoked.status, JSON.stringify(revoked.json)).toBe(200);
    await expect(running).resolves.toMatch(/terminat|connection/i);
    await db.client.end().catch(() => undefined);

    await expect(alice.page.getByText('No active access.')).toBeVisible();
    await expect(alice.page.getByText(/Revoked: incident closed.*tunnel closed, credentials wiped/)).toBeVisible();
    await expect(alice.page.getByText(/Users \(staging\) access was revoked: incident closed/)).toBeVisible();
    await shot(alice.page, '02-revoked', info);
    await expect(connect(uri)).rejects.toThrow(/ECONNREFUSED|terminat|closed|ECONNRESET|authentication/i);
    expect((await new KeytarSecretStore(alice.keychain).list()).filter((a) => a.includes(grantId))).toEqual([]);
    const audit = await auditAs(stack, 'carol', `&grantId=${grantId}`);
    expect(audit.find((e) => e.action === 'grant.revoked')).toMatchObject({ actor: 'carol', reason: 'incident closed' });
  } finally {
    await endAll(alice);
  }
});

test('denial with a reason: dave denies, alice is told why', async () => {
  const info = test.info();
  const ORDERS = 'Orders (production)';
  await ensurePasskey();
  const { dave: d } = await daveUi();
  await request(alice, ORDERS, 'Verify and ask dba and sre-leads', { reason: 'INC-4513 bulk update', level: 'write' });
  await alice.page.getByRole('dialog', { name: 'Confirm it is you' }).getByTestId('stepup-passkey').click();
  await expect(alice.page.getByText('0 of 2 approvals — waiting for dba and sre-leads')).toBeVisible();

  await goTo(d.page, 'Approvals');
  await d.page.getByRole('button', { name: new RegExp(`^Deny .+’s request for ${ORDERS.replace(/[()]/g, '\\$&')}$`) }).click();
  const deny = d.page.getByRole('dialog', { name: /^Deny .+’s request\?$/ });
  await deny.getByLabel('Reason (required)').fill('use the read replica');
  await shot(d.page, '01-dave-deny', info);
  await deny.getByRole('button', { name: 'Deny', exact: true }).click();
  await expect(d.page.getByText('Nobody is waiting for you.')).toBeVisible();

  await expect(alice.page.getByText(`${ORDERS} was denied: use the read replica`)).toBeVisible();
  await goTo(alice.page, 'Waiting');
  await expect(alice.page.getByText('Nothing is waiting.', { exact: false })).toBeVisible();
  await shot(alice.page, '02-alice-denied', info);
  const req = alice.agent.state().requests.find((r) => r.resourceId === 'prod-orders')!;
  expect(req).toMatchObject({ state: 'denied', decisionReason: 'use the read replica' });
  const audit = await auditAs(stack, 'carol', `&requestId=${req.id}`);
  expect(audit.find((e) => e.action === 'request.denied')).toMatchObject({ actor: 'dave', reason: 'use the read replica' });
});

test('a pending request nobody decides on expires; it leaves Waiting and the approver’s inbox', async () => {
  test.setTimeout(60_000);
  const info = test.info();
  const REPORTS = 'Reports (production)';
  const { dave: d } = await daveUi();
  await request(alice, REPORTS, 'Ask sre-leads', { reason: 'quarterly numbers' });
  await expect(alice.page.getByText('0 of 1 approval — waiting for sre-leads')).toBeVisible();
  await goTo(d.page, 'Approvals');
  await expect(d.page.locator('li.approval', { hasText: REPORTS })).toBeVisible();
  await shot(alice.page, '01-waiting', info);

  await expect.poll(() => alice.agent.state().requests.find((r) => r.resourceId === 'prod-reports')?.state, { timeout: 40_000 }).toBe('expired');
  await expect(alice.page.getByText('Nothing is waiting.', { exact: false })).toBeVisible();
  await expect(d.page.locator('li.approval', { hasText: REPORTS })).toHaveCount(0);
  await goTo(alice.page, 'History');
  await expect(alice.page.getByRole('row', { name: /Reports \(production\)/ }).first()).toBeVisible();
  await shot(alice.page, '02-expired-history', info);
  const req = alice.agent.state().requests.find((r) => r.resourceId === 'prod-reports')!;
  const audit = await auditAs(stack, 'carol', `&requestId=${req.id}`);
  expect(audit.map((e) => e.action)).toEqual(['request.created', 'request.expired']);
});

test('break-glass by dave (sre-oncall): step-up, access at once, flagged for review', async () => {
  const info = test.info();
  const ORDERS = 'Orders (production)';
  const { dave: d, secret } = await daveUi();
  try {
    await request(d, ORDERS, 'Verify and break glass', { breakGlass: true, reason: 'INC-9000 orders down', level: 'write' });
    const stepUp = d.page.getByRole('dialog', { name: 'Confirm it is you' });
    await stepUp.locator('#stepup-code').fill(await totpCode(secret, 1));
    await shot(d.page, '01-dave-breakglass-stepup', info);
    await stepUp.getByRole('button', { name: 'Confirm with code' }).click();
    const grantId = await liveGrantId(d.agent, 'prod-orders');
    await goTo(d.page, 'Active');
    await expect(d.page.locator('li.grant', { hasText: ORDERS }).getByRole('heading')).toHaveText(`${ORDERS} · write · break glass`);
    await shot(d.page, '02-dave-breakglass-active', info);
    const { uri } = await d.agent.api.connectionUri({ grantId });
    expect(await psql(uri, 'select count(*) from orders')).toBe('50');
    const requestId = d.agent.state().grants.find((g) => g.grant.id === grantId)!.grant.requestId;
    const audit = await auditAs(stack, 'carol', `&requestId=${requestId}`);
    expect(audit.find((e) => e.action === 'breakglass.used')).toMatchObject({ actor: 'dave', reason: 'INC-9000 orders down', detail: { review: true } });
  } finally {
    await endAll(d);
  }
});

test('the deadline ends access: tunnel closed, the running session killed, credentials wiped, "Time ran out"', async () => {
  const info = test.info();
  const QUICK = 'Quick (staging)';
  await request(alice, QUICK, 'Connect now');
  const grantId = await liveGrantId(alice.agent, 'staging-quick');
  await goTo(alice.page, 'Active');
  await expect(alice.page.locator('li.grant', { hasText: QUICK }).getByRole('timer')).toHaveText(/^0:(0\d|10)$/);
  await shot(alice.page, '01-quick-active', info);
  const { uri } = await alice.agent.api.connectionUri({ grantId });
  const db = await connect(uri);
  expect(await db.rows('select count(*)::int as n from users')).toEqual([{ n: 25 }]);
  const running = db.client.query('select pg_sleep(60)').then(() => 'finished', (error: Error) => error.message);
  await expect(running).resolves.toMatch(/terminat|connection/i);
  const endsAt = Date.parse(alice.agent.state().grants.find((g) => g.grant.id === grantId)!.localEndsAt);
  expect(Date.now() - endsAt).toBeLessThan(3_000);
  await db.client.end().catch(() => undefined);

  await expect(alice.page.getByText(/Time ran out.*tunnel closed, credentials wiped/)).toBeVisible();
  await expect(alice.page.getByText(`${QUICK} access ended — tunnel closed, credentials wiped`)).toBeVisible();
  await shot(alice.page, '02-time-ran-out', info);
  await expect(connect(uri)).rejects.toThrow(/ECONNREFUSED|terminat|closed|ECONNRESET|authentication/i);
  expect((await new KeytarSecretStore(alice.keychain).list()).filter((a) => a.includes(grantId))).toEqual([]);
  expect(await verifyChain(stack)).toMatchObject({ ok: true });
});
