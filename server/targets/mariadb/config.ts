// A MariaDB (or MySQL) resource in the config: the database behind the bastion, the server's admin connection that
// creates an account per grant, the host part of those accounts, and each access level as a list of privileges
// granted on the one database.
import { z } from 'zod';
import { Port, SecretRef } from '../../config-base';
import { LevelName, resourceBase } from '../resource-base';

/** A privilege as GRANT names it (`SELECT`, `SHOW VIEW`, `ALL PRIVILEGES`): words only, it goes into the statement. */
const Privilege = z.string().regex(/^[A-Za-z]+( [A-Za-z]+)*$/, 'a privilege name such as SELECT, SHOW VIEW or ALL PRIVILEGES')
  .transform((p) => p.toUpperCase())
  // With GRANT OPTION a grant's account could hand its privileges to an account that outlives the grant.
  .refine((p) => p !== 'GRANT OPTION', 'not GRANT OPTION: a grant could pass its privileges to accounts that outlive it');

export const MariadbResource = z.strictObject({
  ...resourceBase,
  kind: z.literal('mariadb'),
  target: z.strictObject({ host: z.string().min(1), port: Port.default(3306), database: z.string().min(1).max(64) }),
  /**
   * The host part of every grant's account (`'user'@'<accountHost>'`): the address MariaDB sees the grant's
   * connections come from, which is the bastion's (they arrive through its forward) — `127.0.0.1` when the bastion
   * runs on the database's host. `%` would let the grant's password log in from anywhere that reaches the port.
   */
  accountHost: z.string().min(1).max(255).regex(/^[A-Za-z0-9_.:%/-]+$/, 'an address, a name, a netmask (10.0.0.0/255.0.0.0) or % patterns'),
  /** The server's admin connection, `mysql://user:password@host:port/` as a secret reference (see docs/admin.md). */
  admin: z.strictObject({ url: SecretRef }),
  levels: z.record(LevelName, z.array(Privilege).min(1, 'at least one privilege'))
    .refine((levels) => Object.keys(levels).length > 0, 'at least one access level'),
  /** MAX_USER_CONNECTIONS of a grant's account. Default 10. */
  connectionLimit: z.number().int().min(1).max(1000).optional(),
});
export type MariadbResource = z.output<typeof MariadbResource>;
