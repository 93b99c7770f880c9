// Shared by the step-up tests and benchmark: an in-memory SQLite kysely db migrated with stepUpMigrations, a settable clock,
// and a service built the way the server builds it.
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration, type MigrationProvider } from 'kysely';
import { randomBytes } from 'node:crypto';
import { StepUpConfig, type StepUpConfigInput } from '../server/stepup/config';
import { StepUpService } from '../server/stepup/service';
import type { Clock } from '../shared/domain/clock';
import { KyselyStepUpStore, stepUpMigrations } from '../server/stepup/store';

export async function memoryDb(): Promise<Kysely<any>> {
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  const provider: MigrationProvider = { getMigrations: async (): Promise<Record<string, Migration>> => stepUpMigrations };
  const { error } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) throw error;
  return db;
}

/** The wall clock of the one Clock interface, set by hand: `t` is epoch ms (step-up needs no monotonic time or timers). */
export class TestClock implements Pick<Clock, 'now'> {
  constructor(public t: number) {}
  now = (): number => this.t;
  advance(ms: number): void { this.t += ms; }
}

export function testConfig(over: Partial<StepUpConfigInput> = {}): StepUpConfig {
  return StepUpConfig.parse({ rpId: 'localhost', origins: ['http://localhost:3000'], totpKey: randomBytes(32).toString('base64url'), ...over });
}

export async function makeService(opts: { clock?: TestClock; config?: Partial<StepUpConfigInput> } = {}) {
  const db = await memoryDb();
  const store = new KyselyStepUpStore(db);
  const clock = opts.clock ?? new TestClock(Date.parse('2030-01-01T00:00:10Z'));
  const config = testConfig(opts.config);
  const service = new StepUpService({ store, config, now: clock.now });
  return { db, store, clock, config, service };
}
