// MariaDB / MySQL as a resource kind: its config schema and the provider of an account per grant (provider.ts).
import { requireSecret } from '../../config-base';
import type { TargetKind } from '../kind';
import type { MariadbResource } from './config';
import { createMariadbProvider } from './provider';

export const mariadbKind: TargetKind<MariadbResource> = {
  kind: 'mariadb',
  secretRefs: (resource, where) => [{ where: `${where}.admin.url`, ref: resource.admin.url }],
  connectionTarget: (r) => ({ host: r.target.host, port: r.target.port, database: r.target.database }),
  database: (r) => r.target.database,
  provider: (resources, env) => createMariadbProvider({
    resources: Object.fromEntries(resources.map(({ resource: r, where }) => [r.id, {
      adminUrl: requireSecret(r.admin.url, `${where}.admin.url`, env), database: r.target.database, accountHost: r.accountHost,
      levels: r.levels, connectionLimit: r.connectionLimit,
    }])),
  }),
};
