// Scalars more than one contract needs. A module of their own so problem.ts can use them without importing http.ts,
// which re-exports the problem schema (an import cycle would leave one side undefined at load).
import { z } from 'zod';

export const Instant = z.iso.datetime({ offset: true }).describe('An absolute instant (RFC 3339), decided by the server clock');

export const StepUpMethod = z.enum(['webauthn', 'totp']);
export type StepUpMethod = z.infer<typeof StepUpMethod>;
