// Policy as code, reloaded live (#25): a changed config file is applied without a restart (new requests get the new
// rules and version, a pending one is decided under the version it was made with), an invalid file is refused with
// its reasons and the running config kept, SIGHUP reloads a real `stint-server serve`, sections that need a restart
// are named, the history shows each version with its diff, and `stint-server policy check` says what would change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { defaultStorageUrl, merge, spawnGrantServer, startGrantServer, testConfig, type RunningGrantServer } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { serviceDir, waitFor } from '../../dev/run-dir';
import { main } from '../../server/main';
import type { ServerConfigInput } from '../../server/config';
import { call, clientFor, Tokens } from './helpers';

const metric = async (url: string, line: RegExp) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(line.exec(text)?.[1] ?? Number.NaN);
};

/** production-db v2: one DBA approves, shorter durations, and approving now needs a step-up (this server has none). */
const TIGHTER = { policies: { 'production-db': { duration: { default: '30m', max: '2h' }, approvals: [{ from: 'dba', count: 1 }], stepUp: { approve: 'always' } } } };

describe('policy reload', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;
  let file: string;
  let base: ServerConfigInput;
  const write = (config: unknown) => writeFileSync(file, stringify(config));
  const prodVersion = async () => (await clientFor(server.url, await tokens.for('alice')).get('/v1/resources')).body.resources.find((r: { id: string }) => r.id === 'prod-orders').policy.policyVersion as number;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    const dir = serviceDir('grant-server-reload');
    const port = await freePort();
    base = testConfig(idp, await defaultStorageUrl(dir), port);
    file = join(dir, 'stint-server.yaml');
    write(base);
    server = await startGrantServer({ idp, configPath: file, configDebounceMs: 100, port, dataDir: dir });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('a changed file is applied without a restart; a pending request keeps the version it was evaluated under', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const pending = (await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-1' })).body.request;
    expect(pending).toMatchObject({ state: 'pending_approval', policyVersion: 1, durationSeconds: 3600 });

    write(merge(base, TIGHTER));
    await waitFor('the file change to be reloaded', async () => ((await prodVersion()) === 2 ? true : undefined), 15_000, 100);

    // A request after the change: the new version and its rules.
    const after = (await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-2' })).body.request;
    expect(after).toMatchObject({ state: 'pending_approval', policyVersion: 2, durationSeconds: 1800 });
    expect(after.approvalsNeeded).toEqual([{ group: 'dba', count: 1, have: 0 }]);
    const bob = clientFor(server.url, await tokens.for('bob'));
    const refused = await bob.post(`/v1/requests/${after.id}/approve`, {});
    expect(refused.body.code).toBe('stepup_unavailable');

    // The request made before it is decided under version 1: two approvers, no step-up.
    const first = await bob.post(`/v1/requests/${pending.id}/approve`, {});
    expect(first.status).toBe(200);
    expect(first.body.request).toMatchObject({ state: 'pending_approval', policyVersion: 1 });
    const second = await clientFor(server.url, await tokens.for('dave')).post(`/v1/requests/${pending.id}/approve`, {});
    expect(second.body.request).toMatchObject({ state: 'approved', policyVersion: 1 });

    const audit = (await clientFor(server.url, await tokens.for('carol')).get('/v1/audit?action=config.reloaded')).body.entries;
    expect(audit.at(-1)).toMatchObject({ actor: 'system', detail: { trigger: 'file', changes: ['policies/production-db changed'] } });
    expect(await metric(server.url, /^stint_policy_version_info\{policy="production-db",version="2",hash="[0-9a-f]{64}"\} (\d+)$/m)).toBe(1);
  });

  it('an invalid file is refused with its reasons, and the running config is kept', async () => {
    const before = await metric(server.url, /^stint_config_reloads_total\{trigger="file",outcome="refused"\} (\d+)$/m);
    const broken = structuredClone(merge(base, TIGHTER)) as { resources: { policy: string }[] };
    broken.resources[1]!.policy = 'no-such-policy';
    write(broken);
    await waitFor('the watcher to refuse the file', async () => ((await metric(server.url, /^stint_config_reloads_total\{trigger="file",outcome="refused"\} (\d+)$/m)) > (Number.isNaN(before) ? 0 : before) ? true : undefined), 15_000, 100);

    const carol = clientFor(server.url, await tokens.for('carol'));
    const answer = await carol.post('/v1/admin/config/reload', {});
    expect(answer.status).toBe(422);
    expect(answer.body.code).toBe('config_reload_refused');
    expect(answer.body.errors).toEqual([expect.objectContaining({ path: 'resources[1].policy', message: expect.stringContaining('no-such-policy') })]);
    expect(await prodVersion()).toBe(2);
    const still = (await clientFor(server.url, await tokens.for('alice')).post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-3' })).body.request;
    expect(still.policyVersion).toBe(2);
    const refusals = (await carol.get('/v1/audit?action=config.reload_refused')).body.entries;
    expect(refusals.map((e: { detail: { trigger: string } }) => e.detail.trigger)).toEqual(expect.arrayContaining(['file', 'api']));

    const alice = await call(server.url, 'POST', '/v1/admin/config/reload', { token: await tokens.for('alice'), body: {} });
    expect(alice.status).toBe(403);
    write(merge(base, TIGHTER));
  });

  it('names the sections that need a restart and keeps their running values', async () => {
    write(merge(base, { ...TIGHTER, server: { heartbeatSeconds: 5 }, storage: { url: 'sqlite::memory:' } }));
    const answer = await clientFor(server.url, await tokens.for('carol')).post('/v1/admin/config/reload', {});
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'unchanged', changes: [], restartRequired: ['server.heartbeatSeconds', 'storage.url'] });
    write(merge(base, TIGHTER));
  });

  it('the history shows each version with its diff, newest first (admin route and CLI)', async () => {
    const history = await clientFor(server.url, await tokens.for('carol')).get('/v1/admin/policies/history?policyId=production-db');
    expect(history.status).toBe(200);
    const [v2, v1] = history.body.versions;
    expect(v2).toMatchObject({ policyId: 'production-db', version: 2, current: true, policy: { duration: { default: 1800, max: 7200 } } });
    expect(v2.diff).toContain('-  max: 14400');
    expect(v2.diff).toContain('+  max: 7200');
    expect(v1).toMatchObject({ version: 1, current: false });
    expect((await call(server.url, 'GET', '/v1/admin/policies/history', { token: await tokens.for('alice') })).status).toBe(403);

    const out: string[] = [];
    const code = await main(['policy', 'history', '--policy', 'production-db', '--config', file], { out: (l) => out.push(l), err: (l) => out.push(l), env: {} });
    expect(code, out.join('\n')).toBe(0);
    expect(out.join('\n')).toMatch(/^production-db v2 .* \(in the config file\)$/m);
    expect(out.join('\n')).toContain('    +  approve: always');
  });

  it('reloads on SIGHUP in a real `stint-server serve`', async () => {
    const spawned = await spawnGrantServer({ idp, overrides: { server: { watchConfig: false } } });
    try {
      const alice = clientFor(spawned.url, await tokens.for('alice'));
      const version = async () => (await alice.get('/v1/resources')).body.resources.find((r: { id: string }) => r.id === 'prod-orders').policy.policyVersion as number;
      expect(await version()).toBe(1);
      const yaml = readFileSync(spawned.configPath, 'utf8');
      writeFileSync(spawned.configPath, yaml.replace('default: 1h', 'default: 45m'));
      spawned.proc.child.kill('SIGHUP');
      await waitFor('SIGHUP to reload the config', async () => ((await version()) === 2 ? true : undefined), 15_000, 100);
      const created = (await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-4' })).body.request;
      expect(created).toMatchObject({ policyVersion: 2, durationSeconds: 2700 });
      const audit = (await clientFor(spawned.url, await tokens.for('carol')).get('/v1/audit?action=config.reloaded')).body.entries;
      expect(audit.map((e: { detail: { trigger: string } }) => e.detail.trigger)).toEqual(['signal']);
    } finally {
      await spawned.stop();
    }
  });
});

describe('stint-server policy check', () => {
  const run = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env: { ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' } });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  const dir = serviceDir('policy-check');
  const current = join(dir, 'current.yaml');
  const idp = { issuer: 'http://127.0.0.1:9/', audience: 'stint' };
  writeFileSync(current, stringify(testConfig(idp, 'sqlite::memory:', 8080)));

  it('shows what a reload would change, and what needs a restart', async () => {
    const next = join(dir, 'next.yaml');
    writeFileSync(next, stringify(merge(testConfig(idp, 'sqlite::memory:', 8080), { ...TIGHTER, storage: { url: 'sqlite:/var/lib/stint/stint.db' }, resources: [] })));
    const { code, out } = await run('policy', 'check', next, '--config', current);
    expect(code).toBe(0);
    expect(out).toContain(`ok: ${next} is valid: 0 resource(s), 4 polic(ies), 1 bastion(s)`);
    expect(out).toMatch(/^ {2}policies\/production-db: changed \(content hash [0-9a-f]{12} → [0-9a-f]{12}: a new version\)$/m);
    expect(out).toContain('-  max: 14400');
    expect(out).toContain('+  max: 7200');
    expect(out).toMatch(/^ {2}resources\/prod-orders: removed$/m);
    // A literal admin URL is a secret: never printed; a reference is.
    expect(out).not.toContain('admin:pw@');
    expect(out).toContain('env:ORDERS_ADMIN_URL');
    expect(out).toContain('needs a restart (a reload keeps the running values): storage.url');
  });

  it('an unchanged file says so; an invalid one fails with its reasons', async () => {
    expect((await run('policy', 'check', current, '--config', current)).out).toContain(`no policy, resource or bastion changes against ${current}`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, stringify(merge(testConfig(idp, 'sqlite::memory:', 8080), { policies: { 'production-db': { duration: { default: '9h', max: '1h' } } } })));
    const { code, err } = await run('policy', 'check', bad, '--config', current);
    expect(code).toBe(1);
    expect(err).toContain('policies.production-db.duration.default: expected default ≤ max');
  });
});
