// A CI job on the real stack (#25): the dev IdP's `stint-ci` client authenticates by client credentials, the real
// `stint` CLI runs headless as a child process — `request --wait --json`, then `connect --exec` running a real psql
// through the real bastion to the real PostgreSQL — and the grant ends with the command: the server shows it ended
// and the role can no longer log in. Outside the change window a DBA approves while the job waits; inside it the job
// goes through at once. Refusals as a CI job sees them: no ticket, and trying to approve.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startStack, type Stack } from '../harness/stack';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { DEV_CI_CLIENT } from '../../server/dev-idp/index';
import { serviceDir } from '../../dev/run-dir';
import { call, until, windowFromNow } from '../server/helpers';

const CI_AUDIENCE = 'https://stint.example/ci';
const DEPLOY = { clientId: 'acme-deploy', clientSecret: 'acme-deploy-secret' };

/**
 * The demo's CI policy with its change window now closed, a second resource whose window is open now (and the SSH
 * host staging-web under that open policy), and a second service whose tokens come from a CI provider (another issuer).
 */
function ciWindows(yaml: string, ciIssuer: string): string {
  const withBot = yaml.replace(/^( +)claims: \{ client_id: stint-ci \}.*$/m, (line, indent: string) =>
    `${line}\n${indent.slice(2)}- { name: deploy-bot, issuer: "${ciIssuer}", audience: "${CI_AUDIENCE}", subject: ${DEPLOY.clientId} }`)
    .replace('requesters: [ci-migrations]', 'requesters: [ci-migrations, deploy-bot]');
  const closed = withBot.replace('autoApprove: { window: "02:00-04:00" }', `autoApprove: { window: "${windowFromNow(2, 3)}" }`);
  // One entry's block: from its first line to the next entry or section at its indent or less (the stack's
  // config has more resources and policies after the CI ones).
  const block = (text: string, first: string, next: RegExp) => {
    const start = text.indexOf(first);
    const rest = text.slice(start + first.length);
    const end = rest.search(next);
    return text.slice(start, end === -1 ? text.length : start + first.length + end);
  };
  const resource = block(closed, '  - id: ci-orders', /\n {0,2}\S/)
    .replace('id: ci-orders', 'id: ci-orders-open').replace('policy: ci-migrations', 'policy: ci-open');
  const policy = block(closed, '  ci-migrations:', /\n {0,2}\S/).replace('ci-migrations:', 'ci-open:').replace(windowFromNow(2, 3), windowFromNow(-1, 1));
  const web = closed.indexOf('  - id: staging-web');
  const webPolicy = closed.indexOf('    policy: ', web);
  const withWeb = `${closed.slice(0, webPolicy)}    policy: ci-open${closed.slice(closed.indexOf('\n', webPolicy))}`;
  return `${withWeb.replace('\npolicies:', `\n${resource}\npolicies:`)}\n${policy}`;
}

let stack: Stack;
let ciProvider: IdpInstance;
let dir: string;
beforeAll(async () => {
  // The CI provider: an OpenID provider of its own that mints the job's workload identity tokens.
  ciProvider = await startIdp({ audience: CI_AUDIENCE, serviceClients: [DEPLOY] });
  stack = await startStack({ editConfig: (yaml) => ciWindows(yaml, ciProvider.issuer) });
  dir = serviceDir('ci-job');
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await ciProvider?.close();
});

interface Run { code: number; stdout: string; stderr: string }

/** `stint` as a CI job runs it: the real binary, configured by its environment only. `stderr()` is what it said so far. */
function stint(args: string[], env: Record<string, string> = {}): Promise<Run> & { stderr: () => string } {
  let said = '';
  const done = new Promise<Run>((resolve) => {
    const child = execFile(process.execPath, ['bin/stint.mjs', ...args], {
      timeout: 90_000,
      env: {
        PATH: process.env.PATH!, HOME: dir, TMPDIR: process.env.TMPDIR ?? '/tmp',
        STINT_SERVER_URL: stack.serverUrl, STINT_CLIENT_ID: DEV_CI_CLIENT.clientId, STINT_CLIENT_SECRET: DEV_CI_CLIENT.clientSecret,
        ...env,
      },
    }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
    child.stderr?.on('data', (chunk: Buffer) => { said += chunk.toString(); });
  });
  return Object.assign(done, { stderr: () => said });
}

const asAdmin = async (path: string) => (await call(stack.serverUrl, 'GET', path, { token: await stack.idp.tokenFor('carol') })).body;

/** A DBA finds the CI job's request (by its ticket) waiting, and approves it. Returns its id. */
async function approveWhenAsked(ticket: string): Promise<string> {
  const bob = await stack.idp.tokenFor('bob');
  const pending = await until(`the CI request ${ticket} to wait for a DBA`, async () => {
    const list = (await call(stack.serverUrl, 'GET', '/v1/requests?role=approver', { token: bob })).body as { requests: { id: string; requester: string; ticket?: string }[] };
    return list.requests.find((r) => r.requester === 'service:ci-migrations' && r.ticket === ticket);
  }, 30_000);
  expect((await call(stack.serverUrl, 'POST', `/v1/requests/${pending.id}/approve`, { token: bob, body: {} })).status).toBe(200);
  return pending.id;
}

async function canLogIn(user: string, password: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, user, password, database: 'orders' });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

describe('a CI job with a service identity', () => {
  it('outside the change window: requests, waits while a DBA approves, runs psql through the grant, and the grant ends with it', async () => {
    const asking = stint(['request', 'ci-orders', '--level', 'migrate', '--reason', 'migration 42', '--ticket', 'CHG-42', '--wait', '--json']);
    const pending = { id: await approveWhenAsked('CHG-42') };
    const asked = await asking;
    expect(asked.code, asked.stderr).toBe(0);
    expect(JSON.parse(asked.stdout)).toMatchObject({ request: { id: pending.id, state: 'approved', requester: 'service:ci-migrations', ticket: 'CHG-42' } });
    // Nothing secret on the job's output.
    expect(asked.stdout + asked.stderr).not.toContain(DEV_CI_CLIENT.clientSecret);

    const creds = join(dir, 'creds');
    const ran = await stint(['connect', 'ci-orders', '--exec', `printf '%s\\n%s\\n' "$PGUSER" "$PGPASSWORD" > ${creds}; psql -X -A -t -c "select count(*) from orders where status = 'stuck'"`]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toBe('7');
    expect(ran.stderr).toContain('access ended');

    const [user, password] = readFileSync(creds, 'utf8').trim().split('\n') as [string, string];
    // The command had the grant's own role and password (psql above logged in with them through the bastion)…
    expect(user).toMatch(/^stint_/);
    expect(password.length).toBeGreaterThan(16);
    const grants = (await asAdmin('/v1/grants?all=true')) as { grants: { requestId: string; state: string; endReason?: string }[] };
    expect(grants.grants.find((g) => g.requestId === pending.id)).toMatchObject({ state: 'released' });
    // …which no longer log in anywhere.
    expect(await canLogIn(user, password)).toBe(false);
    // The job's runs wrote nothing of their own (no settings file, no keychain): only the test's own creds file is here.
    expect(readdirSync(dir)).toEqual(['creds']);
  }, 120_000);

  it('inside the change window: approved at once, and the command\'s exit code is the job\'s', async () => {
    const asked = await stint(['request', 'ci-orders-open', '--level', 'migrate', '--reason', 'nightly', '--ticket', 'CHG-43', '--wait', '--json']);
    expect(asked.code, asked.stderr).toBe(0);
    const { request } = JSON.parse(asked.stdout) as { request: { id: string; state: string; decisionReason?: string } };
    expect(request.state).toBe('approved');
    expect(request.decisionReason).toContain('change window');
    const ran = await stint(['connect', 'ci-orders-open', '--exec', 'psql -X -A -t -c "select 1" && exit 7']);
    expect(ran.code).toBe(7);
    const grants = (await asAdmin('/v1/grants?all=true')) as { grants: { requestId: string; state: string }[] };
    expect(grants.grants.find((g) => g.requestId === request.id)?.state).toBe('released');
  }, 120_000);

  it('a grant that ends while the command runs (an admin revokes it) stops the command', async () => {
    const asked = await stint(['request', 'ci-orders-open', '--level', 'migrate', '--reason', 'long job', '--ticket', 'CHG-46', '--wait', '--json']);
    const { request } = JSON.parse(asked.stdout) as { request: { id: string } };
    const job = stint(['connect', 'ci-orders-open', '--exec', 'psql -X -c "select 1" >/dev/null && echo "job: connected" >&2 && sleep 60']);
    // Once the command says it used the database, the grant is active and the tunnel open.
    await until('the job\'s command to use the database', () => job.stderr().includes('job: connected'), 60_000);
    const grants = (await asAdmin('/v1/grants?all=true')) as { grants: { id: string; requestId: string; state: string }[] };
    const grant = grants.grants.find((g) => g.requestId === request.id)!;
    expect(grant.state).toBe('active');
    const revokedAt = Date.now();
    const revoked = await call(stack.serverUrl, 'POST', `/v1/grants/${grant.id}/revoke`, { token: await stack.idp.tokenFor('carol'), body: { reason: 'stop the job' } });
    expect(revoked.status).toBe(200);
    const ran = await job;
    // Well before the command's own 60 s: the command and what it started (sleep) were stopped, not left running.
    expect(Date.now() - revokedAt).toBeLessThan(30_000);
    expect(ran.code, ran.stderr).toBe(143); // 128 + SIGTERM: the shell running sleep was stopped
    expect(ran.stderr).toContain('the access ended before the command did');
  }, 120_000);

  it('an SSH host from a CI job: connect --exec gives the command the grant\'s ssh_config and alias, it runs on the host, and the run\'s folder for them is gone with it', async () => {
    // The job's temporary folder, to see what the runs leave in it.
    const tmp = serviceDir('ci-job-tmp');
    const asked = await stint(['request', 'staging-web', '--reason', 'check the deploy', '--ticket', 'CHG-47', '--wait', '--json'], { TMPDIR: tmp });
    expect(asked.code, asked.stderr).toBe(0);
    const ran = await stint(['connect', 'staging-web', '--exec', 'ssh -F "$STINT_SSH_CONFIG" "$STINT_SSH_HOST" id -un && echo "$STINT_SSH_CONFIG"'], { TMPDIR: tmp });
    expect(ran.code, ran.stderr).toBe(0);
    const [login, config] = ran.stdout.trim().split('\n');
    expect(login).toBe('stinttarget');
    // The key and ssh_config lived in the run's own folder, and went with it.
    expect(config).toMatch(new RegExp(`^${tmp}/stint-service-[^/]+/grants/[^/]+/ssh_config$`));
    // (What node itself keeps there, tsx's compile cache, is not the run's.)
    expect(readdirSync(tmp).filter((name) => name.startsWith('stint'))).toEqual([]);
  }, 120_000);

  it('docs/admin.md\'s CI snippet runs as written: the migration lands, the request is on file', async () => {
    const doc = readFileSync('docs/admin.md', 'utf8');
    const block = /```sh illustration\n(# A CI job[\s\S]*?)```/.exec(doc)![1]!;
    const lines = block.split('\n').filter((l) => l.startsWith('stint '));
    expect(lines).toHaveLength(2);
    const job = serviceDir('ci-snippet');
    writeFileSync(join(job, 'migrate.sql'), 'create table ci_marker (id int primary key, note text);\ninsert into ci_marker values (1, \'from CI\');\n');
    writeFileSync(join(job, 'secret'), DEV_CI_CLIENT.clientSecret);
    const script = [`stint() { "${process.execPath}" "${resolve('bin/stint.mjs')}" "$@"; }`, 'set -e', ...lines].join('\n');
    const running = new Promise<Run>((done) => {
      execFile('/bin/bash', ['-c', script], {
        cwd: job, timeout: 90_000,
        env: {
          PATH: process.env.PATH!, HOME: job, STINT_SERVER_URL: stack.serverUrl, STINT_CLIENT_ID: DEV_CI_CLIENT.clientId,
          STINT_CLIENT_SECRET_FILE: join(job, 'secret'), CI_COMMIT_SHORT_SHA: 'abc1234', CHANGE_ID: 'CHG-44',
        },
      }, (error, stdout, stderr) => done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }));
    });
    const pending = await approveWhenAsked('CHG-44');
    const ran = await running;
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(job, 'request.json'), 'utf8'))).toMatchObject({ request: { id: pending, state: 'approved', reason: 'migrate abc1234' } });
    expect(await stack.pg.query('select note from ci_marker', [], 'orders')).toEqual([{ note: 'from CI' }]);
  }, 120_000);

  it("with the CI provider's workload identity token instead of client credentials", async () => {
    const tokenFile = join(dir, 'id-token');
    writeFileSync(tokenFile, await ciProvider.serviceToken(DEPLOY));
    const env = { STINT_CLIENT_ID: '', STINT_CLIENT_SECRET: '', STINT_TOKEN_FILE: tokenFile };
    const asked = await stint(['request', 'ci-orders-open', '--level', 'migrate', '--reason', 'deploy', '--ticket', 'CHG-45', '--wait', '--json'], env);
    expect(asked.code, asked.stderr).toBe(0);
    const { request } = JSON.parse(asked.stdout) as { request: { id: string; state: string; requester: string } };
    expect(request).toMatchObject({ state: 'approved', requester: 'service:deploy-bot' });
    const ran = await stint(['connect', 'ci-orders-open', '--exec', 'psql -X -A -t -c "select current_user"'], env);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toMatch(/^stint_/);
  }, 120_000);

  it('refusals as the job sees them: a wrong secret, no ticket, and approving is not for services', async () => {
    const wrong = await stint(['resources', '--json'], { STINT_CLIENT_SECRET: 'not-the-secret-9f3a' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('refused the client credentials of stint-ci');
    expect(wrong.stdout + wrong.stderr).not.toContain('not-the-secret-9f3a');

    const noTicket = await stint(['request', 'ci-orders-open', '--level', 'migrate', '--reason', 'nightly', '--wait', '--json']);
    expect(noTicket.code).toBe(1);
    expect(JSON.parse(noTicket.stderr.trim().split('\n').pop()!)).toMatchObject({ error: { code: 'ticket_required' } });

    const alice = await stack.idp.tokenFor('alice');
    const created = await call(stack.serverUrl, 'POST', '/v1/requests', { token: alice, body: { resourceId: 'prod-orders', level: 'read', reason: 'look', ticket: 'INC-1' } });
    const approve = await stint(['approve', created.body.request.id, '--json']);
    expect(approve.code).toBe(1);
    expect(JSON.parse(approve.stderr.trim().split('\n').pop()!)).toMatchObject({ error: { code: 'service_not_allowed' } });
  }, 120_000);
});
