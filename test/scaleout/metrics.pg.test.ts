// The metrics suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite from test/server/metrics.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/metrics.test');
