// Step-up settings. The server's config embeds `StepUpConfig` (e.g. under `stepUp:`) or builds it from the
// environment with stepUpConfigFromEnv. The TOTP key is a secret: it is never logged or echoed.
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

/** STINT_STEPUP_RP_ID, STINT_STEPUP_RP_NAME, STINT_STEPUP_ORIGINS (comma-separated), STINT_STEPUP_TOTP_KEY. */
export function stepUpConfigFromEnv(env: NodeJS.ProcessEnv, fallback: Partial<StepUpConfigInput> = {}): StepUpConfig {
  return StepUpConfig.parse({
    ...fallback,
    ...(env.STINT_STEPUP_RP_ID ? { rpId: env.STINT_STEPUP_RP_ID } : {}),
    ...(env.STINT_STEPUP_RP_NAME ? { rpName: env.STINT_STEPUP_RP_NAME } : {}),
    ...(env.STINT_STEPUP_ORIGINS ? { origins: env.STINT_STEPUP_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    ...(env.STINT_STEPUP_TOTP_KEY ? { totpKey: env.STINT_STEPUP_TOTP_KEY } : {}),
  });
}
