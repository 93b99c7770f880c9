// Taking a grant back after the agent lost its keys (issue #21): POST /v1/grants/:id/rekey on the real grant server
// with a real PostgreSQL role per grant. The same grant keeps its deadline; the old database password stops logging in
// and the session it opened is ended; the old SSH key no longer passes the bastion's lookup and the new one does; the
// answer (the new password) is handed out once, replayed only for the same Idempotency-Key; someone else's grant is
// unknown (404) and an ended one is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { ActivateResult, AuditList, CreateRequestResult, Problem } from '../../shared/contract/http';
import type { PostgresInstance } from '../../dev/postgres';
import { BASTION_TOKEN, type RunningGrantServer } from '../../dev/grant-server';
import { startRekeyStack, type RekeyStack } from './rekey-stack';
import { clientFor, ed25519PublicKeyLine, Tokens } from '../server/helpers';

let db: PostgresInstance;
let server: RunningGrantServer;
let tokens: Tokens;
let stack: RekeyStack | undefined;

beforeAll(async () => {
  stack = await startRekeyStack();
  ({ db, server, tokens } = stack);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

type Client = ReturnType<typeof clientFor>;
const as = async (user: string): Promise<Client> => clientFor(server.url, await tokens.for(user));

async function activeGrant(client: Client) {
  const created = await client.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const request = CreateRequestResult.parse(created.body).request;
  expect(request.state).toBe('approved');
  const publicKey = ed25519PublicKeyLine('first');
  const activated = await client.post(`/v1/requests/${request.id}/activate`, { publicKey });
  expect(activated.status, JSON.stringify(activated.body)).toBe(201);
  return { ...ActivateResult.parse(activated.body), publicKey };
}

async function login(user: string, password: string): Promise<pg.Client> {
  const client = new pg.Client({ host: db.host, port: db.port, database: db.database, user, password });
  await client.connect();
  return client;
}

/** What the bastion's key command is told for this key: the grant's key line, or nothing. */
async function bastionLine(publicKey: string): Promise<string> {
  const key = encodeURIComponent(publicKey.split(' ')[1]!);
  const user = server.config.bastions.main!.user;
  const response = await fetch(`${server.url}/v1/bastion/authorized-keys?user=${user}&type=ssh-ed25519&key=${key}`, { headers: { authorization: `Bearer ${BASTION_TOKEN}` } });
  expect(response.status).toBe(200);
  return response.text();
}

describe('rekey: taking a grant back with new credentials', () => {
  it('makes the old password and key useless, ends the old session, and hands out new ones for the same grant and deadline', async () => {
    const alice = await as('alice');
    const { grant, connection, publicKey: oldKey } = await activeGrant(alice);
    expect(grant.deviceId).toBe('device-alice-1'); // the request's device: activation sent none
    const oldSession = await login(connection.dbUser, connection.dbPassword);
    const oldSessionEnded = new Promise<string>((resolve) => oldSession.on('error', (error) => resolve(error.message)));
    expect((await oldSession.query('select count(*)::int as n from users')).rows[0].n).toBe(2);
    expect(await bastionLine(oldKey)).toContain(`grant:${grant.id}`);

    const newKey = ed25519PublicKeyLine('second');
    const answer = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: newKey, deviceId: 'device-alice-2' }, { 'idempotency-key': 'rekey-1' });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const rekeyed = ActivateResult.parse(answer.body);
    expect(rekeyed.grant).toMatchObject({ id: grant.id, state: 'active', startsAt: grant.startsAt, endsAt: grant.endsAt, deviceId: 'device-alice-2' });
    expect(rekeyed.connection).toMatchObject({ dbUser: connection.dbUser, target: connection.target, bastion: connection.bastion });
    expect(rekeyed.connection.dbPassword).not.toBe(connection.dbPassword);

    // The old credentials are dead: the session they opened was ended, the password logs in nowhere, the key is refused.
    expect(await oldSessionEnded).toMatch(/terminat/i);
    await expect(login(connection.dbUser, connection.dbPassword)).rejects.toThrow(/password authentication failed/);
    expect(await bastionLine(oldKey)).toBe('');
    // The new ones work.
    expect(await bastionLine(newKey)).toContain(`grant:${grant.id}`);
    const fresh = await login(rekeyed.connection.dbUser, rekeyed.connection.dbPassword);
    expect((await fresh.query('select current_user as who, count(*)::int as n from users')).rows[0]).toEqual({ who: connection.dbUser, n: 2 });
    await fresh.end();

    // A retry with the same Idempotency-Key (a lost answer) gets the same answer; nothing is rotated again.
    const replay = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: newKey, deviceId: 'device-alice-2' }, { 'idempotency-key': 'rekey-1' });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.connection.dbPassword).toBe(rekeyed.connection.dbPassword);
    const still = await login(rekeyed.connection.dbUser, rekeyed.connection.dbPassword);
    await still.end();

    // On the record with the new key's hash, never a secret.
    const audit = AuditList.parse((await alice.get(`/v1/audit?grantId=${grant.id}`)).body).entries;
    const entry = audit.find((e) => e.action === 'grant.rekeyed');
    expect(entry).toMatchObject({ actor: 'alice', subject: 'alice', grantId: grant.id, detail: { keyType: 'ssh-ed25519', dbUser: connection.dbUser, deviceId: 'device-alice-2' } });
    expect(entry!.detail!.keySha256).toBe(createHash('sha256').update(newKey.split(' ')[1]!).digest('hex'));
    const text = JSON.stringify(audit);
    expect(text).not.toContain(rekeyed.connection.dbPassword);
    expect(text).not.toContain(connection.dbPassword);

    await alice.post(`/v1/grants/${grant.id}/release`, {});
  });

  it('refuses someone else\'s grant as unknown, an ended grant, a key in use and a malformed body', async () => {
    const alice = await as('alice');
    const erin = await as('erin');
    const { grant, connection } = await activeGrant(alice);
    const other = await activeGrant(alice);

    const foreign = await erin.post(`/v1/grants/${grant.id}/rekey`, { publicKey: ed25519PublicKeyLine() });
    expect(foreign.status).toBe(404);
    expect(Problem.parse(foreign.body).code).toBe('grant_not_found');
    expect((await alice.post('/v1/grants/gr_nope/rekey', { publicKey: ed25519PublicKeyLine() })).status).toBe(404);

    const taken = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: other.publicKey });
    expect(taken.status).toBe(409);
    expect(taken.body.code).toBe('key_in_use');
    expect((await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: 'ssh-rsa AAAA' })).body.code).toBe('invalid_body');
    expect((await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: ed25519PublicKeyLine(), extra: true })).body.code).toBe('invalid_body');
    // None of these changed anything: the password still works.
    const session = await login(connection.dbUser, connection.dbPassword);
    await session.end();

    await alice.post(`/v1/grants/${grant.id}/release`, {});
    const ended = await alice.post(`/v1/grants/${grant.id}/rekey`, { publicKey: ed25519PublicKeyLine() });
    expect(ended.status).toBe(409);
    expect(ended.body.code).toBe('grant_ended');
    await alice.post(`/v1/grants/${other.grant.id}/release`, {});

    const refusals = AuditList.parse((await alice.get(`/v1/audit?grantId=${grant.id}&action=refused.grant.rekey`)).body).entries;
    expect(refusals.map((e) => (e.detail as { code: string }).code)).toEqual(['key_in_use', 'grant_ended']);
    const erinRefused = AuditList.parse((await erin.get('/v1/audit?action=refused.grant.rekey')).body).entries;
    expect(erinRefused.map((e) => [e.actor, (e.detail as { code: string }).code])).toEqual([['erin', 'grant_not_found']]);
  });
});
