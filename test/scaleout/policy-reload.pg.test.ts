// The policy reload suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite from test/server/policy-reload.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/policy-reload.test');
