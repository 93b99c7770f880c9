// Approvability (#18.7): a policy under which some request on a resource could wait with nobody able to approve it
// is refused when the config loads, naming the resource, the policy and what to add; and a running server that got
// such a config some other way refuses the request instead of leaving it pending.
import { writeFileSync } from 'node:fs';
import { serviceDir } from '../../dev/run-dir';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, validateConfig } from '../../server/config';
import { RISK_MAX } from '../../server/lifecycle/approvability';
import { assessRisk } from '../../server/lifecycle/risk';
import { buildServer, type GrantServer } from '../../server/app';
import { demoConfigYaml } from '../../scripts/demo-config';
import { freePort } from '../../dev/ports';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { testConfig } from '../../dev/grant-server';
import { clientFor, Tokens } from './helpers';

/** One bastion, two staging resources (users, reports) and a production one, all on the policy under test. */
function configYaml(policy: string, options: { requesters?: string } = {}): string {
  const resource = (id: string, environment: string) => `
  - id: ${id}
    name: ${id}
    environment: ${environment}
    sensitivity: low
    bastion: main
    target: { host: 10.0.0.1, database: ${id} }
    admin: { url: env:ADMIN_URL }
    levels: { read: ["GRANT pg_read_all_data TO {{role}}"], write: ["GRANT pg_write_all_data TO {{role}}"] }
    policy: self-service`;
  return `server: { url: https://stint.example.com }
identity: { issuer: https://login.example.com, audience: https://stint.example.com/api }
storage: { url: "sqlite::memory:" }
bastions:
  main: { host: bastion.example.com, user: stint, token: env:BASTION_TOKEN, hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHeihTI9aQ5V/Pb7Ln1lHStr+RIIFQ3kT7Ku55pjUIh host"] }
resources:${resource('staging-users', 'staging')}${resource('staging-reports', 'staging')}${resource('prod-orders', 'production')}
policies:
  self-service:
    requesters: ${options.requesters ?? '[engineers]'}
    duration: { default: 1h, max: 4h }
${policy.split('\n').map((line) => `    ${line}`).join('\n')}
`;
}

/** The problems the config load reports, one `path: message` each; fails the test if the config loads. */
function refused(yaml: string): string[] {
  try {
    parseConfig(yaml, 'stint.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected the config to be refused');
}

const loads = (yaml: string) => expect(() => parseConfig(yaml, 'stint.yaml')).not.toThrow();

describe('the config load refuses a policy that could leave a request with nobody to approve it', () => {
  it('auto-approval below a risk threshold and no approvals rule: refused, naming each resource, the policy and the fix', () => {
    const problems = refused(configYaml('autoApprove: { when: { riskBelow: 30 } }'));
    expect(problems).toHaveLength(3);
    expect(problems[0]).toBe(
      'policies.self-service: resource staging-users: policy self-service has no approvals rule and does not auto-approve requests with risk 30–100, '
      + 'so those requests would wait with nobody able to approve them; add an approvals rule (approvals: [{ from: <approver group>, count: 1 }]), '
      + 'or raise autoApprove.when.riskBelow to 101 (risk scores run 0–100)',
    );
    expect(problems[1]).toContain('resource staging-reports: policy self-service');
    expect(problems[2]).toContain('resource prod-orders: policy self-service');
  });

  it('reports like every other config mistake: the file, then one line per problem', () => {
    // In the run dir, which the run sweeps: a test leaves no temp dir behind.
    const path = join(serviceDir('approvability'), 'stint.yaml');
    writeFileSync(path, configYaml('autoApprove: { when: { riskBelow: 30 } }'));
    expect(() => loadConfig(path)).toThrow(new RegExp(`^invalid configuration in ${path}:\\n  - policies\\.self-service: resource staging-users: .*riskBelow to 101`));
  });

  it('riskBelow 101 covers every risk score; 100 leaves a score of 100 to nobody; no riskBelow covers all', () => {
    loads(configYaml(`autoApprove: { when: { riskBelow: ${RISK_MAX + 1} } }`));
    loads(configYaml('autoApprove: { when: {} }'));
    const problems = refused(configYaml(`autoApprove: { when: { riskBelow: ${RISK_MAX} } }`));
    expect(problems[0]).toContain('does not auto-approve requests with risk 100, so those requests would wait');
    expect(problems[0]).toContain('raise autoApprove.when.riskBelow to 101');
  });

  it('the highest risk score is the one the server can give: all signals at once make exactly RISK_MAX', () => {
    const worst = assessRisk({ sensitivity: 'high', deviceId: 'd', deviceSeen: false, ip: '10.0.0.9', ipSeen: false, usualHours: [9, 9, 9, 9, 9], hourNow: 21, recentRequests: 50, recentFailedStepUps: 9 });
    expect(worst.score).toBe(RISK_MAX);
  });

  it('any approvals rule is a route: the same threshold with an approvals rule loads', () => {
    loads(configYaml('autoApprove: { when: { riskBelow: 30 } }\napprovals: [{ from: dba, count: 1 }]'));
    // Approvers alone, no auto-approval: every request waits for someone who can decide it.
    loads(configYaml('approvals: [{ from: dba, count: 2 }]'));
  });

  it('neither approvals nor autoApprove: refused, saying what to add', () => {
    const problems = refused(configYaml('reason: optional'));
    expect(problems[0]).toBe(
      'policies.self-service: resource staging-users: policy self-service has no approvals rule and no autoApprove, so all its requests would wait with '
      + 'nobody able to approve them; add an approvals rule (approvals: [{ from: <approver group>, count: 1 }]), or add autoApprove',
    );
  });

  it('break-glass alone is no route for normal requests', () => {
    const problems = refused(configYaml('autoApprove: { when: { riskBelow: 30 } }\nbreakGlass: { groups: [sre-oncall] }'));
    expect(problems[0]).toContain('resource staging-users: policy self-service has no approvals rule');
  });

  it('auto-approval for some requester groups only: refused naming the groups left out', () => {
    const problems = refused(configYaml('autoApprove: { when: { groups: [engineers] } }', { requesters: '[engineers, contractors]' }));
    expect(problems[0]).toContain('does not auto-approve requests from contractors, so those requests would wait');
    expect(problems[0]).toContain('or add contractors to autoApprove.when.groups');
    loads(configYaml('autoApprove: { when: { groups: [contractors, engineers] } }', { requesters: '[engineers, contractors]' }));
  });

  it('auto-approval in some environments only: refused for the resources outside them, and only those', () => {
    const problems = refused(configYaml('autoApprove: { when: { environments: [staging] } }'));
    expect(problems).toEqual([expect.stringContaining('resource prod-orders: policy self-service has no approvals rule and does not auto-approve requests in environment production')]);
    expect(problems[0]).toContain('or add production to autoApprove.when.environments');
  });

  it('auto-approval during some hours only: refused; a window of the whole day loads', () => {
    const problems = refused(configYaml('autoApprove: { when: { hours: "09:00-18:00" } }'));
    expect(problems[0]).toContain('does not auto-approve requests outside 09:00-18:00 UTC');
    expect(problems[0]).toContain('or remove autoApprove.when.hours');
    expect(refused(configYaml('autoApprove: { when: { hours: "22:00-06:00" } }'))[0]).toContain('outside 22:00-06:00 UTC');
    loads(configYaml('autoApprove: { when: { hours: "00:00-24:00" } }'));
  });

  it('every gap is named with every fix at once', () => {
    const problems = refused(configYaml('autoApprove: { when: { groups: [engineers], riskBelow: 50 } }', { requesters: '[engineers, contractors]' }));
    expect(problems[0]).toContain('does not auto-approve requests from contractors or requests with risk 50–100');
    expect(problems[0]).toContain('or add contractors to autoApprove.when.groups and raise autoApprove.when.riskBelow to 101');
  });

  it('the demo config (docs/config.example.yaml as npm start writes it) still loads', () => {
    const yaml = demoConfigYaml({ ports: { server: 7800, web: 7810, sshd: 7822, pg: 7832, mariadb: 7833 }, dir: '/tmp/stint-demo', audience: 'http://localhost:7800/api', issuer: 'http://localhost:7801' });
    expect(parseConfig(yaml, 'demo').resources.map((r) => r.id)).toEqual(['prod-orders', 'staging-users', 'staging-web', 'ci-orders', 'staging-shop']);
  });
});

describe('the running server refuses a request nobody could approve', () => {
  let idp: IdpInstance;
  let server: GrantServer;
  let url: string;
  let tokens: Tokens;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    const port = await freePort();
    // A config that got past validation (validated first, changed afterwards): staging auto-approves only below
    // risk 21 and has no approval rule left.
    const config = validateConfig(testConfig(idp, 'sqlite::memory:', port), 'test config');
    const staging = config.policies['staging-self-service']!;
    staging.approvals = [];
    staging.autoApprove = { when: { riskBelow: 21 } };
    server = await buildServer({ config, env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' } });
    await server.app.listen({ host: '127.0.0.1', port });
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('refuses with a problem naming the resource, the policy and the fix, and leaves nothing pending', async () => {
    const alice = clientFor(url, await tokens.for('alice'));
    // A new device and a new address: risk 25, not below 21.
    const answer = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ code: 'no_approval_route' });
    expect(answer.body.detail).toBe(
      'nobody could approve this request on staging-users: policy staging-self-service has no approvals rule and does not auto-approve it '
      + '(risk 25 is not below 21); ask an administrator to add an approvals rule (approvals: [{ from: <approver group>, count: 1 }]), '
      + 'or raise autoApprove.when.riskBelow to 101 (risk scores run 0–100)',
    );
    expect((await alice.get('/v1/requests')).body.requests).toEqual([]);
    const audit = (await clientFor(url, await tokens.for('carol')).get('/v1/audit')).body.entries as { action: string; actor: string; resourceId?: string }[];
    expect(audit).toContainEqual(expect.objectContaining({ action: 'refused.request.create', actor: 'alice', resourceId: 'staging-users' }));
  });

  it('still auto-approves the requests the policy covers, and approval rules still make a request wait', async () => {
    const alice = clientFor(url, await tokens.for('alice'));
    const waits = await alice.post('/v1/requests', { resourceId: 'quick-orders', level: 'read', deviceId: 'device-alice-2' });
    expect(waits.status, JSON.stringify(waits.body)).toBe(201);
    expect(waits.body.request).toMatchObject({ state: 'pending_approval', approvalsNeeded: [{ group: 'dba', count: 1, have: 0 }] });
    // Approved by a DBA: alice's device and address are hers from now on (risk learns only from granted requests)…
    expect((await clientFor(url, await tokens.for('bob')).post(`/v1/requests/${waits.body.request.id}/approve`, {})).status).toBe(200);
    // …so her next staging request scores 0, below 21, and is auto-approved.
    const covered = await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-2' });
    expect(covered.status, JSON.stringify(covered.body)).toBe(201);
    expect(covered.body.request).toMatchObject({ state: 'approved', decisionReason: 'auto-approved by policy' });
  });
});
