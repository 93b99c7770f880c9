// Issue #21's take-back for a MariaDB grant (#23), on the real stack with a real mariadbd: the agent holding alice's
// shop access is killed (SIGKILL, its own process); a connection made straight to the database with the grant's
// password — as whoever copied it could — still works after the crash. The same device starts Stint again and Resume
// takes the grant back: the server rotates the account's password and ends its sessions before the new one is handed
// out, so the copied password's connection is cut and logs in no more, while the resumed grant's `mariadb` command
// reads rows through its new tunnel.
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../harness/stack';
import { serviceDir } from '../../dev/run-dir';
import { crashMidGrant } from './faults-support';

const sh = async (line: string) => (await promisify(execFile)('/bin/sh', ['-c', line], { timeout: 15_000 })).stdout.trim();

let stack: Stack;
// The demo's shop policy always asks for a step-up, which an agent in a test process cannot give: on-risk here.
beforeAll(async () => { stack = await startStack({ mariadb: true, editConfig: (yaml) => yaml.replace('stepUp: { request: always, methods: [webauthn, totp] }\n    extend: { maxTotal: 8h, reapproval: false }', 'stepUp: { request: on-risk, methods: [webauthn, totp] }\n    extend: { maxTotal: 8h, reapproval: false }') }); }, 120_000);
afterAll(async () => { await stack?.stop(); });

describe('journey: take a MariaDB grant back after a crash', () => {
  it('the copied password\'s connection is cut and refused after Resume; the resumed grant reads rows', async () => {
    const DEVICE = 'device-crash-mariadb';
    const a = await crashMidGrant(stack, { device: DEVICE, resourceId: 'staging-shop' });
    const user = decodeURIComponent(new URL(a.uri).username);
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const db = stack.mariadb!;
    const direct = () => mysql.createConnection({ host: '127.0.0.1', port: db.port, user, password: oldPassword, database: 'shop' });
    const copied = await direct();
    copied.on('error', () => undefined); // cut by the rekey: expected

    // The crash ends nothing on the database: the copied password still reads.
    expect((await copied.query('SELECT COUNT(*) AS n FROM products'))[0]).toEqual([{ n: 5 }]);

    const b = stack.agent('alice', { deviceId: DEVICE, dataDir: join(serviceDir('crash-resume-mariadb'), 'alice') });
    try {
      await b.agent.start();
      expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)).toMatchObject({ leftFromBefore: true });
      await b.agent.api.resumeGrant({ grantId: a.grantId });
      // Before the new password was handed out, the old one's sessions were ended and it logs in no more.
      await expect(copied.query('SELECT 1')).rejects.toThrow();
      await expect(direct()).rejects.toThrow(/Access denied/);
      const resumed = b.agent.state().grants.find((g) => g.grant.id === a.grantId)!;
      expect(resumed.grant.state).toBe('active');
      expect(resumed.tunnel!.command).toMatch(/^mariadb --defaults-file='[^']+\/my\.cnf'$/);
      expect(await sh(`${resumed.tunnel!.command!} -N -B -e 'SELECT COUNT(*) FROM products'`)).toBe('5');
      // The same account, a new password: the end still drops it.
      await b.agent.api.release({ grantId: a.grantId });
      await expect.poll(async () => (await db.query('SELECT User FROM mysql.user WHERE User = ?', [user])).length, { timeout: 10_000 }).toBe(0);
    } finally {
      await copied.end().catch(() => undefined);
      await b.agent.dispose();
    }
  }, 90_000);
});
