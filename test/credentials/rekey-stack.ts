// The real grant server in front of a real PostgreSQL with one resource, staging-users (a role per grant, read
// level), for the rekey tests: rekey.test.ts (the API) and rekey-ssh.test.ts (the same behind a real bastion).
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, testConfig, type RunningGrantServer } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { createPostgresProvider, type PostgresCredentialProvider } from '../../server/targets/postgres/provider';
import { Tokens } from '../server/helpers';

const LEVELS = { read: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'] };

export interface RekeyStack {
  db: PostgresInstance;
  idp: IdpInstance;
  provider: PostgresCredentialProvider;
  server: RunningGrantServer;
  tokens: Tokens;
  stop: () => Promise<void>;
}

export async function startRekeyStack(): Promise<RekeyStack> {
  const [db, idp] = await Promise.all([startPostgres(), startIdp({ accessTokenTtlSeconds: 3600 })]);
  await db.query('create table users (id int primary key, email text)');
  await db.query("insert into users values (1, 'a@example.com'), (2, 'b@example.com')");
  const provider = createPostgresProvider({ resources: { 'staging-users': { adminUrl: db.adminUrl(), database: db.database, levels: LEVELS } } });
  const port = await freePort();
  const base = testConfig(idp, 'sqlite::memory:', port);
  const server = await startGrantServer({
    idp, port, credentials: provider,
    config: {
      ...base,
      resources: [{
        id: 'staging-users', name: 'Users (staging)', environment: 'staging', sensitivity: 'low', kind: 'postgres', bastion: 'main',
        target: { host: '127.0.0.1', port: db.port, database: db.database }, admin: { url: db.adminUrl() }, levels: LEVELS, policy: 'staging-self-service',
      }],
      policies: { 'staging-self-service': base.policies!['staging-self-service']! },
    },
  });
  return {
    db, idp, provider, server, tokens: new Tokens(idp),
    stop: async () => {
      await server.close();
      await provider.close();
      await Promise.allSettled([db.stop(), idp.close()]);
    },
  };
}
