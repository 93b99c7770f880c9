// The audit streaming suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite from test/server/audit-stream.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/audit-stream.test');
