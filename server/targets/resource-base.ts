// The fields every resource has, whatever its kind: who sees it, how risky it is, which bastion leads to it and which
// policy decides requests for it. A kind (server/targets/<kind>/config.ts) adds its own target, admin connection
// and access levels to these.
import { z } from 'zod';
import { IdString } from '../config-base';

export const resourceBase = {
  id: IdString,
  name: z.string().min(1),
  environment: z.string().min(1),
  sensitivity: z.enum(['low', 'medium', 'high']),
  bastion: z.string().min(1),
  policy: z.string().min(1),
};

/** Access level names, as requests name them. */
export const LevelName = z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a lower-case level name');
