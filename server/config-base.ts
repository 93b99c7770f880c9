// Pieces of the configuration that every part of it uses, the per-kind resource schemas of server/targets/ too
// (kept apart from config.ts, which imports those schemas, so that nothing imports in a circle).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseDuration } from '../shared/domain/duration';

/** Durations accept "90s", "15m", "1h30m", "2d" or a number of seconds; parsed to seconds. */
export const Duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: `expected ${parsed.message}, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed.seconds;
});

/**
 * A secret reference: `env:NAME` (environment variable), `file:/path` (file contents, trimmed) or a literal value.
 * Config keeps the reference; `resolveSecret` reads it when needed so `check-config` can report missing ones.
 */
export const SecretRef = z.string().min(1, 'a secret reference: env:NAME, file:/path or a literal value');
export type SecretRef = z.infer<typeof SecretRef>;

export type SecretResolution = { ok: true; value: string } | { ok: false; code: 'secret_missing'; message: string };

export function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): SecretResolution {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const value = env[name];
    return value ? { ok: true, value } : { ok: false, code: 'secret_missing', message: `environment variable ${name} is not set` };
  }
  if (ref.startsWith('file:')) {
    const path = ref.slice(5);
    try {
      return { ok: true, value: readFileSync(path, 'utf8').trim() };
    } catch (error) {
      return { ok: false, code: 'secret_missing', message: `cannot read secret file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}` };
    }
  }
  return { ok: true, value: ref };
}

/** Resolve or throw an Error naming where the reference came from (for start-up paths). */
export function requireSecret(ref: SecretRef, where: string, env: NodeJS.ProcessEnv = process.env): string {
  const resolved = resolveSecret(ref, env);
  if (!resolved.ok) throw Object.assign(new Error(`${where}: ${resolved.message}`), { code: resolved.code });
  return resolved.value;
}

export const Port = z.number().int().min(1).max(65535);
export const IdString = z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only').max(128);
