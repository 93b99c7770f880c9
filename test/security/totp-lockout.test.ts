// MEDIUM (review of the first wave): the one-time-code lockout raced. The attempt counter was read, the code checked,
// then the counter written, so 60 wrong codes sent at once were all checked before the lock landed — a brute force
// 12 times faster than the limit. An attempt is now taken atomically before the code is checked. With the server's
// own store on SQLite and on PostgreSQL (real databases): 60 parallel wrong codes, at most 5 checked, then locked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore, type Store } from '../../server/storage/db';
import { StepUpService } from '../../server/stepup/service';
import { KyselyStepUpStore } from '../../server/stepup/store';
import { StepUpConfig } from '../../server/stepup/config';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { serviceDir } from '../../dev/run-dir';

let pg: PostgresInstance;
beforeAll(async () => { pg = await startPostgres({ database: 'lockout' }); }, 60_000);
afterAll(async () => { await pg?.stop(); });

async function attack(url: string) {
  const store: Store = openStore(url);
  try {
    await store.migrate();
    const config = StepUpConfig.parse({ rpId: 'localhost', origins: ['http://localhost:3000'], totpKey: randomBytes(32).toString('base64url'), maxAttempts: 5, lockoutSeconds: 300 });
    const service = new StepUpService({ store: new KyselyStepUpStore(store.db as never), config, now: () => Date.now() });
    const user = { sub: 'victim', groups: [], admin: false };
    const { secret } = await service.enrollTotp(user);
    const { generate } = await import('otplib');
    expect((await service.confirmTotp('victim', await generate({ secret }))).ok).toBe(true);
    const good = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const wrong = good === '000000' ? '111111' : '000000';
    const results = await Promise.all(Array.from({ length: 60 }, async () => {
      const issued = await service.issueChallenge({ userId: 'victim', actionHash: 'attack', methods: ['totp'], userVerification: false });
      if (!issued.ok) throw new Error(issued.message);
      return service.verifyForHash({ userId: 'victim', actionHash: 'attack', methods: ['totp'], userVerification: false, proof: { method: 'totp', challengeId: issued.challenge.challengeId, code: wrong } });
    }));
    const checked = results.filter((r) => !r.ok && r.reason === 'wrong_code').length;
    const locked = results.filter((r) => !r.ok && r.code === 'stepup_locked' && r.reason !== 'wrong_code').length;
    // Even the right code is refused now: the lock holds.
    const after = await service.issueChallenge({ userId: 'victim', actionHash: 'attack', methods: ['totp'], userVerification: false });
    const right = after.ok ? await service.verifyForHash({ userId: 'victim', actionHash: 'attack', methods: ['totp'], userVerification: false, proof: { method: 'totp', challengeId: after.challenge.challengeId, code: good } }) : undefined;
    return { checked, locked, right };
  } finally {
    await store.close();
  }
}

describe('TOTP lockout under parallel guesses', () => {
  it('SQLite: 60 wrong codes at once, at most 5 checked, then locked', async () => {
    const { checked, locked, right } = await attack(`sqlite:${join(serviceDir('lockout'), 'stint.db')}`);
    expect(checked).toBeLessThanOrEqual(5);
    expect(checked + locked).toBe(60);
    expect(right).toMatchObject({ ok: false, code: 'stepup_locked' });
  });

  it('PostgreSQL: 60 wrong codes at once, at most 5 checked, then locked', async () => {
    const { checked, locked, right } = await attack(pg.adminUrl('lockout'));
    expect(checked).toBeLessThanOrEqual(5);
    expect(checked + locked).toBe(60);
    expect(right).toMatchObject({ ok: false, code: 'stepup_locked' });
  });
});
