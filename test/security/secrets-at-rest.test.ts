// LOW–MEDIUM (review of the first wave): the idempotency table kept each activation's answer — the database password
// included — in clear for 24 hours, with the client's Idempotency-Key beside it. Answers are now sealed with a key
// derived from the client's Idempotency-Key, of which only a hash is stored. After a full journey on the real stack
// (an agent's activation, a retried activation, a TOTP enrollment), no table of the server's database holds a
// password, a TOTP secret or an Idempotency-Key in clear — and the retry still gets its credentials back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { startStack, type Stack } from '../harness/stack';
import { call, ed25519PublicKeyLine } from '../server/helpers';
import { sqlitePath } from '../../server/storage/db';

let stack: Stack;
beforeAll(async () => { stack = await startStack(); }, 120_000);
afterAll(async () => { await stack?.stop(); });

/** Every text value in every table of the server's SQLite database. */
function everyValue(): string {
  const db = new Database(sqlitePath(stack.config.storage.url), { readonly: true });
  try {
    const tables = db.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>;
    return tables.map(({ name }) => JSON.stringify(db.prepare(`select * from "${name}"`).all())).join('\n');
  } finally {
    db.close();
  }
}

describe('secrets at rest in the server database', () => {
  it('an activation retried with its Idempotency-Key gets its credentials again, and none of them is stored in clear', async () => {
    // An agent's own activation (random Idempotency-Key per call, as the agent sends it).
    const alice = stack.agent('alice');
    await alice.signIn();
    const created = await alice.agent.api.createRequest({ resourceId: 'staging-users', level: 'read', reason: 'at rest', connect: true });
    const { uri } = await alice.agent.api.connectionUri({ grantId: created.connection!.grantId });
    const agentPassword = decodeURIComponent(new URL(uri).password);
    await alice.agent.dispose();

    // A retried activation: the same key and body twice (a network failure between), then a step-up factor.
    const token = await stack.idp.tokenFor('alice');
    const request = (await call(stack.serverUrl, 'POST', '/v1/requests', { token, body: { resourceId: 'staging-users', level: 'read', reason: 'retry' } })).body.request;
    expect(request.state).toBe('approved');
    const key = 'retry-key-0123456789-abcdefghij';
    const body = { publicKey: ed25519PublicKeyLine() };
    const first = await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body, headers: { 'idempotency-key': key } });
    const retry = await call(stack.serverUrl, 'POST', `/v1/requests/${request.id}/activate`, { token, body, headers: { 'idempotency-key': key } });
    expect(first.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body).toEqual(first.body);
    const retriedPassword: string = first.body.connection.dbPassword;
    const totp = (await call(stack.serverUrl, 'POST', '/v1/stepup/totp/enroll', { token, body: {} })).body.secret as string;

    const stored = everyValue();
    expect(stored).toContain(request.id); // the dump is of the right database
    for (const [what, secret] of [['agent activation password', agentPassword], ['retried activation password', retriedPassword], ['TOTP secret', totp], ['Idempotency-Key', key]] as const) {
      expect(secret.length, what).toBeGreaterThan(8);
      expect(stored.includes(secret), `${what} stored in clear`).toBe(false);
    }
  });
});
