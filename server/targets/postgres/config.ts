// A PostgreSQL resource in the config: the database behind the bastion, the server's admin connection that creates a
// role per grant, and what each access level grants (SQL run at issue). `kind` may be left out: PostgreSQL was the
// first kind, and configs written before kinds existed parse unchanged.
import { z } from 'zod';
import { Port, SecretRef } from '../../config-base';
import { LevelName, resourceBase } from '../resource-base';

export const PostgresResource = z.strictObject({
  ...resourceBase,
  kind: z.literal('postgres').default('postgres'),
  target: z.strictObject({ host: z.string().min(1), port: Port.default(5432), database: z.string().min(1) }),
  /** The server's admin connection for creating roles: `{ url: <secret ref> }` (`secretRef` is accepted as an alias). */
  admin: z.union([
    z.strictObject({ url: SecretRef }),
    z.strictObject({ secretRef: SecretRef }).transform((a) => ({ url: a.secretRef })),
  ]),
  levels: z.record(LevelName, z.array(z.string().min(1)).min(1, 'at least one SQL statement'))
    .refine((levels) => Object.keys(levels).length > 0, 'at least one access level'),
  /** CONNECTION LIMIT for the ephemeral role. */
  connectionLimit: z.number().int().min(1).max(1000).optional(),
});
export type PostgresResource = z.output<typeof PostgresResource>;
