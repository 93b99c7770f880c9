// `stint-server policy check FILE [--config CURRENT]` and `stint-server policy history --config FILE` (#25): what an
// operator runs before and after changing policies — is the new file valid, what would a reload change, which
// changes wait for a restart, and which versions the policies have had.
import { ConfigError, loadConfig, policyHash, resolveSecret, secretRefs, type ServerConfig } from '../config';
import { openStore } from '../storage/db';
import { configDelta } from './changes';
import { PolicyVersions } from './versions';

export interface PolicyIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const short = (hash: string) => hash.slice(0, 12);
const indent = (text: string) => text.trimEnd().split('\n').map((line) => `    ${line}`).join('\n');

function load(path: string, io: PolicyIo): ServerConfig | undefined {
  try {
    return loadConfig(path);
  } catch (error) {
    io.err(error instanceof ConfigError ? error.message : `stint-server: ${(error as Error).message}`);
    return undefined;
  }
}

/** Validate FILE; with a current config, show what a reload to FILE would change (exit 1 when FILE is invalid). */
export function policyCheck(file: string, currentPath: string | undefined, io: PolicyIo): number {
  const next = load(file, io);
  if (!next) return 1;
  io.out(`ok: ${file} is valid: ${next.resources.length} resource(s), ${Object.keys(next.policies).length} polic(ies), ${Object.keys(next.bastions).length} bastion(s)`);
  for (const [id, policy] of Object.entries(next.policies)) io.out(`  policy ${id}: content hash ${short(policyHash(policy))}`);
  // The server resolves these when it reloads; here they are only warnings, since this shell's environment may differ.
  for (const s of secretRefs(next).filter((r) => r.where.startsWith('bastions.') || r.where.startsWith('resources['))) {
    const resolved = resolveSecret(s.ref, io.env);
    if (!resolved.ok) io.out(`  warning: ${s.where}: ${resolved.message} (the server refuses the reload if it cannot resolve it either)`);
  }
  if (!currentPath) return 0;
  const current = load(currentPath, io);
  if (!current) return 1;
  const { changes, restartRequired } = configDelta(current, next);
  if (changes.length === 0) io.out(`no policy, resource or bastion changes against ${currentPath}`);
  else io.out(`a reload would change, against ${currentPath}:`);
  for (const change of changes) {
    const hashes = change.section === 'policies' && change.change === 'changed'
      ? ` (content hash ${short(policyHash(current.policies[change.id]!))} → ${short(policyHash(next.policies[change.id]!))}: a new version)` : '';
    io.out(`  ${change.section}/${change.id}: ${change.change}${hashes}`);
    io.out(indent(change.diff));
  }
  if (restartRequired.length) io.out(`needs a restart (a reload keeps the running values): ${restartRequired.join(', ')}`);
  return 0;
}

/** The recorded versions, newest first, with their diffs; `current` marks the ones the config file holds now. */
export async function policyHistory(config: ServerConfig, options: { policyId?: string; limit: number }, io: PolicyIo): Promise<number> {
  const store = openStore(config.storage.url);
  try {
    const versions = await new PolicyVersions(store.db).history(options);
    if (versions.length === 0) io.out('no policy versions recorded yet (the server records them when it starts or reloads)');
    for (const v of versions) {
      const current = config.policies[v.policyId] && policyHash(config.policies[v.policyId]!) === v.hash ? ' (in the config file)' : '';
      io.out(`${v.policyId} v${v.version}  ${new Date(v.createdAt).toISOString()}  ${short(v.hash)}${current}`);
      io.out(indent(v.diff));
    }
    return 0;
  } finally {
    await store.close();
  }
}
