// PostgreSQL as a resource kind: its config schema and the provider of a role per grant (provider.ts).
import { requireSecret } from '../../config-base';
import type { TargetKind } from '../kind';
import { PostgresResource } from './config';
import { createPostgresProvider } from './provider';

export const postgresKind: TargetKind<PostgresResource> = {
  kind: 'postgres',
  secretRefs: (resource, where) => [{ where: `${where}.admin.url`, ref: resource.admin.url }],
  connectionTarget: (r) => ({ host: r.target.host, port: r.target.port, database: r.target.database }),
  database: (r) => r.target.database,
  provider: (resources, env) => createPostgresProvider({
    resources: Object.fromEntries(resources.map(({ resource: r, where }) => [r.id, {
      adminUrl: requireSecret(r.admin.url, `${where}.admin.url`, env), database: r.target.database, levels: r.levels, connectionLimit: r.connectionLimit,
    }])),
  }),
};
