// The grant server's bad-input integration suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite
// from test/server/bad-input.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/bad-input.test');
