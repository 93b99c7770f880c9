// The grant server's step-up-in-the-lifecycle suite, unchanged, on PostgreSQL storage (the same suite runs on
// SQLite from test/server/stepup.test.ts; the step-up store itself is tested on both in test/stepup/store.test.ts).
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/stepup.test');
