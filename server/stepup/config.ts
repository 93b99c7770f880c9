// Step-up settings, built by the server from its config's `webauthn` and `stepup` sections (server/main.ts). The TOTP
// key is a secret: it is never logged or echoed.
import { z } from 'zod';

export const StepUpConfig = z.object({
  /** WebAuthn relying party id: the grant server's domain (`localhost` in tests; never an IP address). */
  rpId: z.string().min(1).refine((v) => !/^[0-9.]+$/.test(v) && !v.includes(':'), 'an RP ID is a domain, not an IP address'),
  rpName: z.string().min(1).default('Stint'),
  /** Origins the step-up view runs at, e.g. `https://stint.example.com` (the desktop app intercepts this origin). */
  origins: z.array(z.url()).min(1),
  /** 32-byte AES-256-GCM key for TOTP secrets at rest: base64/base64url or 64 hex digits. */
  totpKey: z.string().min(43),
  totpIssuer: z.string().min(1).optional(),
  challengeTtlSeconds: z.number().int().positive().max(600).default(120),
  maxAttempts: z.number().int().positive().max(20).default(5),
  lockoutSeconds: z.number().int().positive().default(300),
});
export type StepUpConfig = z.output<typeof StepUpConfig>;
export type StepUpConfigInput = z.input<typeof StepUpConfig>;
