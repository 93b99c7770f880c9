// The restart and audit-CLI suite, unchanged, on PostgreSQL storage (the same suite runs on SQLite from
// test/server/restart-audit.test.ts): a deadline that passed while the only server was down, the audit chain's
// verify/export, tampering found, check-config and migrate — all through the real CLI against a PostgreSQL store.
import { usePostgresStorage } from './pg-env';

usePostgresStorage();
await import('../server/restart-audit.test');
