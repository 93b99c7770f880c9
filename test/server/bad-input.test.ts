// Every class of bad input gets a 4xx application/problem+json that names the problem, never a 5xx or a stack
// trace, and changes nothing; authorization failures are audited. A fast-check property throws generated bodies
// at every POST route and checks exactly that. Idempotency-Key replays the first answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Problem } from '../../shared/contract/http';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { call, clientFor, ed25519PublicKeyLine, RecordingProvider, Tokens } from './helpers';

describe('bad input', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;
  let ids: { pending: string; approved: string; grant: string; bobsRequest: string };

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    server = await startGrantServer({ idp, credentials: new RecordingProvider() });
    const alice = clientFor(server.url, await tokens.for('alice'));
    const bob = clientFor(server.url, await tokens.for('bob'));
    const pending = (await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'INC-1', deviceId: 'device-alice-1' })).body.request.id;
    const approved = (await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' })).body.request.id;
    const forGrant = (await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1' })).body.request.id;
    const grant = (await alice.post(`/v1/requests/${forGrant}/activate`, { publicKey: ed25519PublicKeyLine() })).body.grant.id;
    const bobsRequest = (await bob.post('/v1/requests', { resourceId: 'staging-users', level: 'read', deviceId: 'device-bob-1' })).body.request.id;
    ids = { pending, approved, grant, bobsRequest };
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  const db = () => server.server.store.db;
  async function stateFingerprint(): Promise<string> {
    const [requests, grants, approvals] = await Promise.all([
      db().selectFrom('requests').selectAll().orderBy('id').execute(),
      db().selectFrom('grants').selectAll().orderBy('id').execute(),
      db().selectFrom('approvals').selectAll().orderBy('request_id').orderBy('approver').execute(),
    ]);
    return JSON.stringify({ requests, grants, approvals });
  }
  const auditCount = async () => Number((await db().selectFrom('audit').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  function expectProblem(answer: { status: number; contentType: string; body: unknown }, status: number, code: string) {
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expect(answer.contentType).toContain('application/problem+json');
    const problem = Problem.parse(answer.body);
    expect(problem.code).toBe(code);
    expect(problem.detail).toBeTruthy();
    expect(JSON.stringify(problem)).not.toMatch(/\n\s+at |node_modules|\.ts:\d/);
    return problem;
  }

  it('malformed JSON, empty JSON, wrong media type and oversized bodies', async () => {
    const token = await tokens.for('alice');
    const before = await stateFingerprint();
    expectProblem(await call(server.url, 'POST', '/v1/requests', { token, raw: '{"resourceId": "staging-users",' }), 400, 'invalid_json');
    expectProblem(await call(server.url, 'POST', '/v1/requests', { token, raw: '' }), 400, 'invalid_json');
    expectProblem(await call(server.url, 'POST', '/v1/requests', { token, raw: 'resourceId=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type');
    const huge = { resourceId: 'staging-users', level: 'read', reason: 'x'.repeat(100_000) };
    expectProblem(await call(server.url, 'POST', '/v1/requests', { token, body: huge }), 413, 'body_too_large');
    expect(await stateFingerprint()).toBe(before);
  });

  it('wrong types and unknown fields name each bad field', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const before = await stateFingerprint();
    const wrongTypes = expectProblem(await alice.post('/v1/requests', { resourceId: 42, level: 'read', durationSeconds: 'long' }), 400, 'invalid_body');
    expect(wrongTypes.errors!.map((e) => e.path).sort()).toEqual(['durationSeconds', 'resourceId']);
    const unknown = expectProblem(await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', admin: true }), 400, 'invalid_body');
    expect(unknown.errors).toEqual([{ path: 'admin', message: 'unknown field(s): admin' }]);
    expectProblem(await alice.post(`/v1/grants/${ids.grant}/extend`, { durationSeconds: -5 }), 400, 'invalid_body');
    expectProblem(await alice.post(`/v1/requests/${ids.approved}/activate`, { publicKey: 'ssh-rsa AAAA' }), 400, 'invalid_body');
    expectProblem(await alice.get('/v1/requests?role=everyone'), 400, 'invalid_query');
    expectProblem(await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'admin' }), 422, 'unknown_level');
    expectProblem(await alice.post('/v1/requests', { resourceId: 'staging-users', level: 'read', durationSeconds: 9 * 3600 }), 422, 'duration_over_limit');
    expectProblem(await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read' }), 422, 'reason_required');
    expectProblem(await alice.post('/v1/requests', { resourceId: 'prod-orders', level: 'read', reason: 'x', ticket: 'JIRA-1' }), 422, 'ticket_invalid');
    expect(await stateFingerprint()).toBe(before);
  });

  it('unknown ids, malformed ids and unknown routes', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    expectProblem(await alice.post('/v1/requests/req_doesnotexist/cancel', {}), 404, 'request_not_found');
    expectProblem(await alice.post('/v1/grants/gr_nope/release', {}), 404, 'grant_not_found');
    expectProblem(await alice.post('/v1/requests/bad%20id!/cancel', {}), 400, 'invalid_id');
    expectProblem(await alice.get('/v1/nothing-here'), 404, 'route_not_found');
    expectProblem(await alice.post('/v1/requests', { resourceId: 'finance-ledger', level: 'read' }), 404, 'resource_not_found');
  });

  it("another user's ids look like unknown ids, change nothing, and are audited", async () => {
    const erin = clientFor(server.url, await tokens.for('erin'));
    const before = await stateFingerprint();
    const auditBefore = await auditCount();
    expectProblem(await erin.post(`/v1/requests/${ids.bobsRequest}/cancel`, {}), 404, 'request_not_found');
    expectProblem(await erin.post(`/v1/grants/${ids.grant}/release`, {}), 404, 'grant_not_found');
    expectProblem(await erin.post(`/v1/requests/${ids.approved}/activate`, { publicKey: ed25519PublicKeyLine() }), 404, 'request_not_found');
    expectProblem(await erin.get(`/v1/grants/${ids.grant}`), 404, 'grant_not_found');
    expectProblem(await erin.get('/v1/grants?all=true'), 403, 'admin_only');
    expect(await stateFingerprint()).toBe(before);
    const rows = await db().selectFrom('audit').selectAll().where('seq', '>', auditBefore).orderBy('seq').execute();
    expect(rows.map((r) => [r.actor, r.action])).toEqual([
      ['erin', 'refused.request.cancel'], ['erin', 'refused.grant.release'], ['erin', 'refused.request.activate'], ['erin', 'refused.grant.read'], ['erin', 'refused.grant.list_all'],
    ]);
    // erin's audit view does not show her the rows about others' requests, only her own attempts.
    const visible = (await erin.get('/v1/audit')).body.entries;
    expect(visible.every((e: { actor: string; subject?: string }) => e.actor === 'erin' || e.subject === 'erin')).toBe(true);
  });

  it('generated bodies at every POST route: never a 5xx, never a change of state', async () => {
    const posts = server.server.routes.filter((r) => r.method === 'POST');
    expect(posts.map((p) => p.url)).toHaveLength(13);
    const bodies = fc.oneof(
      { weight: 3, arbitrary: fc.anything({ withNullPrototype: false }) },
      { weight: 2, arbitrary: fc.dictionary(fc.constantFrom('resourceId', 'level', 'reason', 'durationSeconds', 'breakGlass', 'publicKey', 'method', 'code', 'challengeId', 'stepUp', 'comment', 'deviceId', 'ticket', '__proto__', 'constructor'), fc.anything()) },
      { weight: 1, arbitrary: fc.string().map((raw) => ({ __raw: raw })) },
    );
    const before = await stateFingerprint();
    const users = await Promise.all(['alice', 'bob', 'carol'].map((u) => tokens.for(u)));
    const idChoices = [ids.pending, ids.approved, ids.grant, ids.bobsRequest, 'req_unknown', 'x'.repeat(150)];
    for (const spec of posts) {
      await fc.assert(fc.asyncProperty(bodies, fc.constantFrom(...idChoices), fc.constantFrom(...users), async (body, id, token) => {
        // What goes over the wire: a raw string, or the JSON of the generated value (which drops undefined members).
        const raw = typeof body === 'object' && body !== null && '__raw' in body ? String((body as { __raw: unknown }).__raw) : JSON.stringify(body ?? null);
        let parsed: unknown;
        try { parsed = JSON.parse(raw); } catch { parsed = Symbol('invalid'); }
        // Valid bodies may legitimately change state; this property is about everything else.
        fc.pre(!(spec.body ?? { safeParse: () => ({ success: true }) }).safeParse(parsed ?? {}).success);
        const path = spec.url.replace(':id', encodeURIComponent(id));
        let answer;
        try {
          answer = await call(server.url, 'POST', path, { token, raw });
        } catch (error) {
          throw new Error(`${spec.url}: ${String(error)}`);
        }
        expect(answer.status, `${spec.url} ${JSON.stringify(body)} → ${JSON.stringify(answer.body)}`).toBeGreaterThanOrEqual(400);
        expect(answer.status).toBeLessThan(500);
        expect(answer.contentType).toContain('application/problem+json');
      }), { numRuns: 60 });
    }
    expect(await stateFingerprint()).toBe(before);
  });

  it('Idempotency-Key replays the first answer and refuses reuse with another body', async () => {
    const alice = clientFor(server.url, await tokens.for('alice'));
    const body = { resourceId: 'staging-users', level: 'read', deviceId: 'device-alice-1', reason: 'idempotent' };
    const first = await alice.post('/v1/requests', body, { 'idempotency-key': 'key-1' });
    const second = await alice.post('/v1/requests', body, { 'idempotency-key': 'key-1' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.request.id).toBe(first.body.request.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const count = await db().selectFrom('requests').select((eb) => eb.fn.countAll<number>().as('n')).where('reason', '=', 'idempotent').executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
    expectProblem(await alice.post('/v1/requests', { ...body, reason: 'other' }, { 'idempotency-key': 'key-1' }), 422, 'idempotency_key_reused');
    // Keys are per user: bob's key-1 is his own.
    const bob = clientFor(server.url, await tokens.for('bob'));
    const bobs = await bob.post('/v1/requests', { ...body, deviceId: 'device-bob-1' }, { 'idempotency-key': 'key-1' });
    expect(bobs.status).toBe(201);
    expect(bobs.body.request.requester).toBe('bob');
    // Concurrent retries of an activation get the same grant and the same one-time credentials.
    const activations = await Promise.all([1, 2].map(() => alice.post(`/v1/requests/${first.body.request.id}/activate`, { publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmPEW5xmvNRE/7MHRN5pQeQjIeRjLRx2zXlnQVUmiv5 k' }, { 'idempotency-key': 'act-1' })));
    expect(activations.map((a) => a.status)).toEqual([201, 201]);
    expect(activations[0]!.body.grant.id).toBe(activations[1]!.body.grant.id);
  });
});
