// The server's entry to step-up: build once from the shared kysely db and the step-up config, then
// include `stepUpMigrations` in the migrator, pass `gate` to the lifecycle, and serve `declareStepUpRoutes(...)`
// through the router (server/http/router.ts), which checks the caller's token on each of them.
import type { FastifyPluginAsync } from 'fastify';
import type { Kysely } from 'kysely';
import type { StepUpConfig } from './config';
import { stepUpRoutes, type StepUpAuditEntry } from './routes';
import type { StepUpActionResolver, StepUpGate } from './seam';
import { StepUpService } from './service';
import { KyselyStepUpStore } from './store';

export { StepUpConfig } from './config';
export { stepUpMigrations } from './store';
export { stepUpProblem, stepUpFailureStatus, type StepUpAuditEntry } from './routes';
export { StepUpService } from './service';

export interface StepUp {
  service: StepUpService;
  /** What the lifecycle calls to verify a proof for an action. */
  gate: StepUpGate;
  routes(opts: { resolver: StepUpActionResolver; audit?: (entry: StepUpAuditEntry) => Promise<void> }): FastifyPluginAsync;
}

export function createStepUp(opts: { db: Kysely<any>; config: StepUpConfig; now?: () => number }): StepUp {
  const service = new StepUpService({ store: new KyselyStepUpStore(opts.db), config: opts.config, now: opts.now });
  return { service, gate: service, routes: (r) => stepUpRoutes({ service, resolver: r.resolver, audit: r.audit }) };
}
