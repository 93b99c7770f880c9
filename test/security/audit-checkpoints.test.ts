// MEDIUM (review of the first wave): the audit hash chain shows an edited or a deleted row, but whoever can write the
// database can also cut rows off its end or recompute the whole chain, and verify would say "intact". Signed
// checkpoints (audit.checkpoints: an Ed25519 key the database never sees, a file outside it) pin what the chain was.
// Here a real server writes them while it runs; then each of the four kinds of tampering is made on the database and
// `stint-server audit verify` names it — and a checkpoint file edited to match is refused as forged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, createHash } from 'node:crypto';
import { join } from 'node:path';
import { sql } from 'kysely';
import { stringify } from 'yaml';
import { main, type Io } from '../../server/main';
import { openStore } from '../../server/storage/db';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, testConfig } from '../../dev/grant-server';
import { serviceDir } from '../../dev/run-dir';
import { FakeClock } from '../../dev/fake-clock';
import { chainRows } from '../../server/lifecycle/audit';
import { readCheckpoints, startCheckpoints } from '../../server/lifecycle/audit-checkpoints';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const env = { STINT_AUDIT_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), ORDERS_ADMIN_URL: 'postgres://admin:pw@10.1.2.3:5432/orders' };

function io(): Io & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), env };
}

let idp: IdpInstance;
let dir: string;
let configPath: string;
let checkpointFile: string;

beforeAll(async () => {
  idp = await startIdp();
  dir = serviceDir('audit-checkpoints');
  checkpointFile = join(dir, 'checkpoints', 'audit.jsonl');
  const config = { ...testConfig(idp, `sqlite:${join(dir, 'stint.db')}`), audit: { checkpoints: { key: 'env:STINT_AUDIT_KEY', file: checkpointFile, every: '1s' } } };
  configPath = join(dir, 'stint-server.yaml');
  writeFileSync(configPath, stringify(config));
  const server = await startGrantServer({ idp, config, env, dataDir: dir });
  const token = await idp.tokenFor('alice');
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${server.url}/v1/requests`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ resourceId: 'staging-users', level: 'read', reason: `checkpoint ${i}` }),
    });
    expect(response.status).toBe(201);
  }
  // The server signs the head within a second; then one more from the CLI finds nothing new to sign.
  const lastSigned = () => { try { return Math.max(0, ...readFileSync(checkpointFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)); } catch { return 0; } };
  for (const until = Date.now() + 5_000; lastSigned() < 3 && Date.now() < until;) await new Promise((r) => setTimeout(r, 50));
  expect(lastSigned()).toBeGreaterThanOrEqual(3);
  await server.close();
  const again = io();
  expect(await main(['audit', 'checkpoint', '--config', configPath], again)).toBe(0);
}, 60_000);
afterAll(async () => { await idp?.close(); });

/** Run `audit verify` against a copy of the database with `tamper` applied to it. */
async function verifyAfter(tamper: (run: (query: ReturnType<typeof sql>) => Promise<unknown>) => Promise<unknown>): Promise<{ code: number; out: string }> {
  const copy = join(dir, `tampered-${Math.random().toString(36).slice(2)}.db`);
  copyFileSync(join(dir, 'stint.db'), copy);
  const store = openStore(`sqlite:${copy}`);
  try {
    await tamper((query) => query.execute(store.db));
  } finally {
    await store.close();
  }
  const copyConfig = join(dir, `${copy}.yaml`.split('/').at(-1)!);
  writeFileSync(copyConfig, readFileSync(configPath, 'utf8').replace(join(dir, 'stint.db'), copy));
  const result = io();
  const code = await main(['audit', 'verify', '--config', copyConfig], result);
  return { code, out: [...result.lines, ...result.errors].join('\n') };
}

const someHash = (text: string) => createHash('sha256').update(text).digest('hex');

describe('signed audit checkpoints', () => {
  it('an untouched chain verifies against every checkpoint, with the public key alone too', async () => {
    const ok = io();
    expect(await main(['audit', 'verify', '--config', configPath], ok)).toBe(0);
    expect(ok.lines[0]).toMatch(/^ok: \d+ entries, chain intact .*matches \d+ signed checkpoints?/);
    const publicPem = join(dir, 'audit-public.pem');
    writeFileSync(publicPem, publicKey.export({ type: 'spki', format: 'pem' }));
    const auditor = { ...io(), env: {} };
    expect(await main(['audit', 'verify', '--config', configPath, '--public-key', publicPem], auditor)).toBe(0);
  });

  it('names an edited row, a deleted row and a cut-off tail', async () => {
    const edited = await verifyAfter((run) => run(sql`update audit set reason = 'nothing to see' where seq = 2`));
    expect(edited).toMatchObject({ code: 1 });
    expect(edited.out).toMatch(/broken \(edited\): at seq 2/);

    const deleted = await verifyAfter((run) => run(sql`delete from audit where seq = 2`));
    expect(deleted.out).toMatch(/broken \(deleted\): at seq 2/);

    // The last rows cut off: the chain that is left is whole, only the checkpoint knows it was longer.
    const truncated = await verifyAfter((run) => run(sql`delete from audit where seq > 1`));
    expect(truncated.code).toBe(1);
    expect(truncated.out).toMatch(/broken \(truncated\): .*the chain ends at seq 1, but a checkpoint signed at .* saw seq \d+/);

  });

  it('a chain recomputed properly (content and hashes) is caught by the checkpoints alone', async () => {
    const { chainRows } = await import('../../server/lifecycle/audit');
    const result = await verifyAfter(async (run) => {
      const rows = await openRows(run);
      await run(sql`delete from audit`);
      const rebuilt = chainRows(rows.map((r) => ({ at: Number(r.at), actor: r.actor, action: r.action, reason: 'rewritten history' })), undefined).rows;
      for (const row of rebuilt) {
        await run(sql`insert into audit (seq, at, actor, action, subject, request_id, grant_id, resource_id, reason, policy_version, risk, detail, prev_hash, hash)
          values (${row.seq}, ${row.at}, ${row.actor}, ${row.action}, ${row.subject}, ${row.request_id}, ${row.grant_id}, ${row.resource_id}, ${row.reason}, ${row.policy_version}, ${row.risk}, ${row.detail}, ${row.prev_hash}, ${row.hash})`);
      }
    });
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/broken \(rehashed\): at seq \d+: row \d+ is not the row a checkpoint signed at .* saw/);
  });

  it('a checkpoint file edited to match a forged chain is refused: its signature fails', async () => {
    const original = readFileSync(checkpointFile, 'utf8');
    try {
      const lines = original.trim().split('\n').map((l) => JSON.parse(l) as { hash: string });
      lines[0]!.hash = someHash('forged');
      writeFileSync(checkpointFile, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      const forged = io();
      expect(await main(['audit', 'verify', '--config', configPath], forged)).toBe(1);
      expect(forged.errors.join('\n')).toMatch(/broken \(forged_checkpoint\): .*is not signed by this key/);
    } finally {
      writeFileSync(checkpointFile, original);
    }
  });
});

async function openRows(run: (query: ReturnType<typeof sql>) => Promise<unknown>) {
  const result = await run(sql`select * from audit order by seq`) as { rows: { seq: number; at: number; actor: string; action: string }[] };
  return result.rows;
}

describe('when checkpoints are written', () => {
  it('after N new entries, or after the interval when anything new was appended — never for an unchanged head', async () => {
    const store = openStore('sqlite::memory:');
    await store.migrate();
    const file = join(serviceDir('audit-checkpoints-timing'), 'audit.jsonl');
    const clock = new FakeClock();
    let head: { seq: number; hash: string } | undefined;
    const append = async (n: number) => {
      const { rows, head: next } = chainRows(Array.from({ length: n }, () => ({ at: clock.now(), actor: 'alice', action: 'request.created' })), head);
      await store.db.insertInto('audit').values(rows).execute();
      head = next;
    };
    const settle = async (ms: number) => { clock.advance(ms); for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };
    const signed = () => readCheckpoints(file).checkpoints.map((c) => c.seq);
    await append(2);
    const stop = startCheckpoints({ db: store.db, privateKey, file, everyMs: 60_000, afterEntries: 5, pollMs: 1_000, clock, onError: (e) => { throw e; } });
    try {
      await settle(0);
      expect(signed()).toEqual([2]); // at start: what is there
      await append(3);
      await settle(1_000);
      expect(signed()).toEqual([2]); // 3 new entries: below 5, and the minute has not passed
      await append(2);
      await settle(1_000);
      expect(signed()).toEqual([2, 7]); // 5 new entries
      await append(1);
      await settle(30_000);
      expect(signed()).toEqual([2, 7]);
      await settle(30_000);
      expect(signed()).toEqual([2, 7, 8]); // a minute with something new
      await settle(120_000);
      expect(signed()).toEqual([2, 7, 8]); // nothing new: nothing signed
    } finally {
      stop();
      await store.close();
    }
  });
});
