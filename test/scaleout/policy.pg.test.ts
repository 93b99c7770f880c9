// The grant server's policy integration suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite
// from test/server/policy.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/policy.test');
