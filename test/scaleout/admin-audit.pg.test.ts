// The admin audit search on PostgreSQL storage (the 100,000-row suite is SQLite: test/server/admin-audit.test.ts).
// Rows go in through the server's own write path (the hash chain in SQL), then every filter and the keyset paging
// must return exactly what a scan of the table finds, newest first; the migration's indexes exist; the chain verifies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { AuditPage, AuditVerifyStatus } from '../../shared/contract/admin';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { clientFor, RecordingProvider, Tokens, until } from '../server/helpers';
import { usePostgresStorage } from './pg-env';

usePostgresStorage();

const USERS = ['alice', 'bob', 'carol', 'erin'];
const ACTIONS = ['request.created', 'grant.extended', 'grant.revoked'];

describe('admin audit on PostgreSQL', () => {
  let idp: IdpInstance;
  let tokens: Tokens;
  let server: RunningGrantServer;

  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtlSeconds: 3600 });
    tokens = new Tokens(idp);
    server = await startGrantServer({ idp, credentials: new RecordingProvider() });
    // 600 rows: actor and subject differ on a third of them, so "user" must mean either.
    for (let batch = 0; batch < 6; batch++) {
      await server.lifecycle.auditReported(Array.from({ length: 100 }, (_, k) => {
        const i = batch * 100 + k;
        return { actor: USERS[i % 4]!, subject: USERS[(i + (i % 3 === 0 ? 1 : 0)) % 4]!, action: ACTIONS[i % 3]!, grantId: `gr_${i % 17}`, resourceId: i % 2 ? 'prod-orders' : 'staging-users' };
      }));
    }
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  it('has the (column, seq) indexes of migration 0013', async () => {
    const names = (await sql<{ indexname: string }>`select indexname from pg_indexes where tablename = 'audit'`.execute(server.server.store.db)).rows.map((r) => r.indexname);
    for (const column of ['actor', 'subject', 'grant_id', 'request_id', 'resource_id', 'action']) expect(names).toContain(`audit_${column}_seq`);
    expect(names).not.toContain('audit_subject');
  });

  it('pages every filter newest first by keyset, exactly as a scan of the table', async () => {
    const carol = clientFor(server.url, await tokens.for('carol'));
    const all = (await server.server.store.db.selectFrom('audit').select(['seq', 'actor', 'subject', 'action', 'grant_id', 'resource_id']).orderBy('seq', 'desc').execute())
      .map((r) => ({ ...r, seq: Number(r.seq) }));
    const cases: [string, (r: (typeof all)[number]) => boolean][] = [
      ['user=bob', (r) => r.actor === 'bob' || r.subject === 'bob'],
      ['user=erin&action=grant.revoked', (r) => (r.actor === 'erin' || r.subject === 'erin') && r.action === 'grant.revoked'],
      ['grantId=gr_5', (r) => r.grant_id === 'gr_5'],
      ['resourceId=prod-orders&action=grant.extended', (r) => r.resource_id === 'prod-orders' && r.action === 'grant.extended'],
      ['', () => true],
    ];
    for (const [query, match] of cases) {
      const seqs: number[] = [];
      let before: number | undefined;
      for (;;) {
        const page = AuditPage.parse((await carol.get(`/v1/admin/audit?${query}&limit=40${before ? `&before=${before}` : ''}`)).body);
        seqs.push(...page.entries.map((e) => e.seq));
        if (!page.next) break;
        before = page.next;
      }
      expect(seqs, query).toEqual(all.filter(match).map((r) => r.seq));
    }
    // A user's own History, newest first, on the same search.
    const bob = clientFor(server.url, await tokens.for('bob'));
    const history = (await bob.get('/v1/audit?order=desc&limit=30')).body.entries.map((e: { seq: number }) => e.seq);
    expect(history).toEqual(all.filter((r) => r.actor === 'bob' || r.subject === 'bob').slice(0, 30).map((r) => r.seq));
  });

  it('exports as JSON Lines in chain order and verifies the chain', async () => {
    const carol = clientFor(server.url, await tokens.for('carol'));
    const res = await fetch(`${server.url}/v1/admin/audit/export?format=jsonl&grantId=gr_3`, { headers: { authorization: `Bearer ${await tokens.for('carol')}` } });
    const seqs = (await res.text()).trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(seqs.length).toBeGreaterThan(30);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect((await carol.post('/v1/admin/audit/verify', {})).status).toBe(202);
    const done = await until('verification', async () => {
      const status = AuditVerifyStatus.parse((await carol.get('/v1/admin/audit/verify')).body);
      return status.state === 'done' ? status : undefined;
    }, 30_000);
    expect(done.result).toMatchObject({ ok: true });
  });
});
