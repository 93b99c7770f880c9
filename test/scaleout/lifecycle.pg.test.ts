// The grant server's lifecycle integration suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite
// from test/server/lifecycle.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/lifecycle.test');
