// Runs a test file's grant servers on PostgreSQL: one harness PostgreSQL per file (started before the file's
// suites, stopped after), and the grant-server harness switched to give each server its own database on it.
import { afterAll, beforeAll, expect } from 'vitest';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';

export function usePostgresStorage(): { pg: () => PostgresInstance } {
  let instance: PostgresInstance | undefined;
  const saved = { storage: process.env.STINT_TEST_STORAGE, url: process.env.STINT_TEST_PG_URL };
  beforeAll(async () => {
    instance = await startPostgres({ database: 'stint_tests' });
    process.env.STINT_TEST_STORAGE = 'postgres';
    process.env.STINT_TEST_PG_URL = instance.adminUrl();
  });
  afterAll(async () => {
    // Guard against a suite that silently ran on SQLite: the servers must have created their databases here.
    if (instance) expect((await instance.query("select datname from pg_database where datname like 'stint\\_%' and datname <> 'stint_tests'", [], 'postgres')).length).toBeGreaterThan(0);
    if (saved.storage === undefined) delete process.env.STINT_TEST_STORAGE; else process.env.STINT_TEST_STORAGE = saved.storage;
    if (saved.url === undefined) delete process.env.STINT_TEST_PG_URL; else process.env.STINT_TEST_PG_URL = saved.url;
    await instance?.stop();
  });
  return { pg: () => instance! };
}
