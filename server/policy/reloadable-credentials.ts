// Credentials that follow a live reload (#25). The registry (server/targets/registry.ts) builds one provider for a
// fixed list of resources, with their secrets resolved; a reload that adds or changes resources builds a new one
// and later calls go to it. It is built over the new config's resources plus every resource seen since start, so
// a resource a reload removed keeps its admin connection until the restart and the roles of its grants are still
// revoked. The provider it replaces is closed once calls it was serving have had time to end.
import type { ServerConfig } from '../config';
import { canonicalJson } from '../config';
import type { CredentialProvider } from '../credentials/provider';
import { CredentialError } from '../credentials/errors';
import { credentialProviders } from '../targets/registry';
import type { TargetDeps } from '../targets/kind';

type Resource = ServerConfig['resources'][number];

/** Long enough for a call in flight on the old provider to finish (its statements time out well before). */
const RETIRE_AFTER_MS = 60_000;

export interface ReloadableCredentials {
  provider: CredentialProvider;
  /** Build the provider for a reloaded config's resources (their secrets resolve: the reload checked them). */
  reconfigure(config: ServerConfig): void;
}

export function reloadableCredentials(resources: Resource[], env: NodeJS.ProcessEnv, deps: TargetDeps = {}, build = credentialProviders): ReloadableCredentials {
  const known = new Map(resources.map((r) => [r.id, r]));
  let current = build(resources, env, deps);
  const retiring = new Set<CredentialProvider>();
  const use = (resourceId: string): CredentialProvider => {
    if (!current) throw new CredentialError('unknown_resource', `no resource "${resourceId}" is configured`);
    return current;
  };
  const provider: CredentialProvider = {
    get kind() { return current?.kind ?? 'none'; },
    issue: (input) => use(input.resourceId).issue(input),
    extend: (input) => use(input.resourceId).extend(input),
    rotate: (input) => use(input.resourceId).rotate(input),
    revoke: (input) => use(input.resourceId).revoke(input),
    isolationProblems: async () => (await current?.isolationProblems?.()) ?? [],
    notices: async () => (await current?.notices?.()) ?? [],
    close: async () => {
      await Promise.all([current, ...retiring].map((p) => p?.close().catch(() => undefined)));
    },
  };
  return {
    provider,
    reconfigure(config) {
      const before = canonicalJson([...known.values()]);
      for (const resource of config.resources) known.set(resource.id, resource);
      if (canonicalJson([...known.values()]) === before) return;
      const old = current;
      current = build([...known.values()], env, deps);
      if (!old) return;
      retiring.add(old);
      setTimeout(() => { retiring.delete(old); void old.close().catch(() => undefined); }, RETIRE_AFTER_MS).unref();
    },
  };
}
