// Admin API of policy as code (#25): live reload of the config file and the policy version history with diffs.
import { z } from 'zod';
import { Instant } from './primitives';

const PolicyId = z.string().regex(/^[A-Za-z0-9_.:-]+$/).max(128);

export const ConfigChange = z.strictObject({
  section: z.enum(['policies', 'resources', 'bastions']),
  id: z.string(),
  change: z.enum(['added', 'removed', 'changed']),
  /** Unified diff of the entry (YAML, keys sorted, durations in seconds, literal secrets as `<secret>`). */
  diff: z.string(),
});
export type ConfigChange = z.infer<typeof ConfigChange>;

export const PolicyVersionRef = z.strictObject({ policyId: PolicyId, version: z.number().int().positive(), hash: z.string() });

export const ReloadConfigBody = z.strictObject({});

export const ReloadConfigResult = z.strictObject({
  /** `unchanged`: no policy, resource or bastion differs from the running ones. */
  outcome: z.enum(['applied', 'unchanged']),
  changes: z.array(ConfigChange),
  /** Sections that changed in the file but only take effect after a restart (e.g. `storage`, `server.listen`). */
  restartRequired: z.array(z.string()),
  /** Policy versions this reload created. */
  versions: z.array(PolicyVersionRef),
});

export const PolicyHistoryQuery = z.strictObject({
  policyId: PolicyId.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const PolicyVersionEntry = z.strictObject({
  policyId: PolicyId,
  version: z.number().int().positive(),
  hash: z.string(),
  createdAt: Instant,
  /** True for the version the server decides new requests with. */
  current: z.boolean(),
  /** The policy's content (durations in seconds); absent for versions recorded before contents were kept. */
  policy: z.record(z.string(), z.unknown()).optional(),
  /** Unified diff from the version before. */
  diff: z.string(),
});

export const PolicyHistory = z.strictObject({ versions: z.array(PolicyVersionEntry) });
