// What a new configuration changes against the running one (#25): each policy, resource and bastion added, removed
// or changed, with a unified diff an operator can read (secret values redacted), and the sections a live reload
// cannot apply because they are wired in at start (they need a restart). Pure: `policy check` and the server's
// reload both use it.
import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { canonicalJson, policyHash, type ServerConfig } from '../config';
import { resourceSecretRefs } from '../targets/registry';

/** The sections a running server takes from a changed file; everything else is read once, at start. */
export const RELOADABLE = ['policies', 'resources', 'bastions'] as const;
export type ReloadableSection = (typeof RELOADABLE)[number];

export interface ConfigChange {
  section: ReloadableSection;
  id: string;
  change: 'added' | 'removed' | 'changed';
  /** Unified diff of the entry (YAML, keys sorted, durations in seconds, secrets as `<secret>`). */
  diff: string;
}

export interface ConfigDelta {
  changes: ConfigChange[];
  /** Sections (or `section.field`) that differ but only take effect after a restart, e.g. `storage`, `server.listen`. */
  restartRequired: string[];
}

/** A literal secret never appears in a diff; a reference (env:NAME, file:/path) does: it is not the secret. */
const redact = (ref: string) => (ref.startsWith('env:') || ref.startsWith('file:') ? ref : '<secret>');

/** A copy of `value` with each of `secrets` (where it appears as a whole string) redacted. */
function withoutSecrets(value: unknown, secrets: Set<string>): unknown {
  if (typeof value === 'string') return secrets.has(value) ? redact(value) : value;
  if (Array.isArray(value)) return value.map((v) => withoutSecrets(v, secrets));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutSecrets(v, secrets)]));
  return value;
}

function shown(section: ReloadableSection, value: unknown): unknown {
  if (value === undefined) return undefined;
  if (section === 'resources') {
    // Each kind names its own secrets (server/targets): whatever they are, they are not shown.
    const resource = value as ServerConfig['resources'][number];
    return withoutSecrets(resource, new Set(resourceSecretRefs(resource, '').map((s) => s.ref)));
  }
  if (section === 'bastions') {
    const bastion = value as ServerConfig['bastions'][string];
    return { ...bastion, token: redact(bastion.token) };
  }
  return value;
}

/** Sorted-key YAML of a value: the same content always reads the same, so a diff shows only real changes. */
function yamlOf(value: unknown): string {
  return value === undefined ? '' : stringify(JSON.parse(canonicalJson(value)));
}

export function entryDiff(name: string, before: unknown, after: unknown): string {
  const text = createTwoFilesPatch(name, name, yamlOf(before), yamlOf(after), undefined, undefined, { context: 3 });
  // The "Index:" and "====" header lines say nothing a reader needs.
  return text.split('\n').filter((line) => !/^=+$/.test(line) && !line.startsWith('Index: ')).join('\n');
}

function entries(config: ServerConfig, section: ReloadableSection): Map<string, unknown> {
  if (section === 'resources') return new Map(config.resources.map((r) => [r.id, r]));
  return new Map(Object.entries(config[section]));
}

function same(section: ReloadableSection, a: unknown, b: unknown): boolean {
  if (section === 'policies') return policyHash(a as ServerConfig['policies'][string]) === policyHash(b as ServerConfig['policies'][string]);
  return canonicalJson(a) === canonicalJson(b);
}

export function configDelta(from: ServerConfig, to: ServerConfig): ConfigDelta {
  const changes: ConfigChange[] = [];
  for (const section of RELOADABLE) {
    const before = entries(from, section);
    const after = entries(to, section);
    for (const id of [...new Set([...before.keys(), ...after.keys()])].sort()) {
      const a = before.get(id);
      const b = after.get(id);
      if (a !== undefined && b !== undefined && same(section, a, b)) continue;
      const change = a === undefined ? 'added' : b === undefined ? 'removed' : 'changed';
      const diff = entryDiff(`${section}/${id}`, shown(section, a), shown(section, b));
      // Only a literal secret changed: the redacted texts are equal, so say so rather than show an empty diff.
      changes.push({ section, id, change, diff: diff.includes('\n@@') ? diff : `${section}/${id}: a secret value changed` });
    }
  }
  return { changes, restartRequired: restartRequired(from, to) };
}

function restartRequired(from: ServerConfig, to: ServerConfig): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(from), ...Object.keys(to)].filter((k) => !(RELOADABLE as readonly string[]).includes(k)));
  for (const key of [...keys].sort()) {
    const a = (from as Record<string, unknown>)[key];
    const b = (to as Record<string, unknown>)[key];
    if (canonicalJson(a) === canonicalJson(b)) continue;
    const objects = a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a);
    if (!objects) {
      out.push(key);
      continue;
    }
    const fields = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const field of [...fields].sort()) {
      if (canonicalJson((a as Record<string, unknown>)[field]) !== canonicalJson((b as Record<string, unknown>)[field])) out.push(`${key}.${field}`);
    }
  }
  return out;
}

/** The running config with a new file's reloadable sections: what a reload applies (the rest waits for a restart). */
export function withReloadable(running: ServerConfig, next: ServerConfig): ServerConfig {
  return { ...running, policies: next.policies, resources: next.resources, bastions: next.bastions };
}
