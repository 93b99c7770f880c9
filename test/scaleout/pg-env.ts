// Runs a test file's grant servers on PostgreSQL: one harness PostgreSQL per file (started before the file's
// suites, stopped after), and the grant-server harness switched to give each server its own database on it.
import { afterAll, beforeAll } from 'vitest';
import { startPostgres, type PostgresInstance } from '../harness/postgres';

export function usePostgresStorage(): { pg: () => PostgresInstance } {
  let instance: PostgresInstance | undefined;
  const saved = { storage: process.env.STINT_TEST_STORAGE, url: process.env.STINT_TEST_PG_URL };
  beforeAll(async () => {
    instance = await startPostgres({ database: 'stint_tests' });
    process.env.STINT_TEST_STORAGE = 'postgres';
    process.env.STINT_TEST_PG_URL = instance.adminUrl();
  });
  afterAll(async () => {
    if (saved.storage === undefined) delete process.env.STINT_TEST_STORAGE; else process.env.STINT_TEST_STORAGE = saved.storage;
    if (saved.url === undefined) delete process.env.STINT_TEST_PG_URL; else process.env.STINT_TEST_PG_URL = saved.url;
    await instance?.stop();
  });
  return { pg: () => instance! };
}
