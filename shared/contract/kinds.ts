// The kinds of resource a grant can be for. Each has a folder on the server (server/targets/<kind>/) and a module in
// the agent (agent/core/kinds/<kind>.ts); hosts take their words for it from shared/domain/kinds.ts.
import { z } from 'zod';

export const ResourceKind = z.enum(['postgres', 'ssh', 'mariadb']);
export type ResourceKind = z.infer<typeof ResourceKind>;
