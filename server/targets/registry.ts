// The resource kinds the server knows, in one list: the config's resource schema is their union (on `kind`, which
// defaults to postgres), and the credentials of a config are one provider that hands each call to the provider of
// its resource's kind. Adding a kind: a folder under server/targets/, a line in each list here, and its name in
// shared/contract/kinds.ts. Nothing in the lifecycle changes.
import { z } from 'zod';
import type { SecretRef } from '../config-base';
import type { CredentialProvider } from '../credentials/provider';
import { CredentialError } from '../credentials/errors';
import type { Connection } from '../../shared/contract/http';
import type { SshNodeCredential } from '../bastion/nodes';
import type { TargetDeps, TargetKind } from './kind';
import { PostgresResource } from './postgres/config';
import { postgresKind } from './postgres';
import { SshResource } from './ssh/config';
import { sshKind } from './ssh';
import { MariadbResource } from './mariadb/config';
import { mariadbKind } from './mariadb';

export const ResourceConfig = z.discriminatedUnion('kind', [PostgresResource, SshResource, MariadbResource]);
export type ResourceConfig = z.output<typeof ResourceConfig>;

type KindOf<K extends ResourceConfig['kind']> = Extract<ResourceConfig, { kind: K }>;
const KINDS: { [K in ResourceConfig['kind']]: TargetKind<KindOf<K>> } = {
  postgres: postgresKind,
  ssh: sshKind,
  mariadb: mariadbKind,
};

/** The kinds a resource may be, as the config's error messages list them. */
export const KIND_NAMES = Object.keys(KINDS) as ResourceConfig['kind'][];

/** A kind's module, typed for any resource: it is only ever handed resources of its own kind. */
function kindOf(kind: ResourceConfig['kind']): TargetKind<ResourceConfig> {
  return KINDS[kind] as unknown as TargetKind<ResourceConfig>;
}

export function resourceSecretRefs(resource: ResourceConfig, where: string): { where: string; ref: SecretRef }[] {
  return kindOf(resource.kind).secretRefs(resource, where);
}

/**
 * One provider for every resource of the config: each call goes to the provider of its resource's kind (made once
 * per kind that has resources); start-up checks and close cover them all. Undefined when there are no resources.
 */
export function credentialProviders(resources: ResourceConfig[], env: NodeJS.ProcessEnv, deps: TargetDeps = {}): CredentialProvider | undefined {
  if (resources.length === 0) return undefined;
  const byKind = new Map<ResourceConfig['kind'], { resource: ResourceConfig; where: string }[]>();
  resources.forEach((resource, i) => byKind.set(resource.kind, [...(byKind.get(resource.kind) ?? []), { resource, where: `resources[${i}]` }]));
  const providers = new Map<string, CredentialProvider>();
  for (const [kind, list] of byKind) providers.set(kind, kindOf(kind).provider(list, env, deps));
  const kindById = new Map(resources.map((r) => [r.id, r.kind]));
  return routeByResource(providers, (resourceId) => kindById.get(resourceId));
}

/** What the agent is told about a resource's target at activation (kind by kind). */
export function connectionTarget(resource: ResourceConfig): Connection['target'] {
  return kindOf(resource.kind).connectionTarget(resource);
}

/** The database a resource's grants open, as the catalog shows it ('' for a kind without one). */
export function resourceDatabase(resource: ResourceConfig): string {
  return kindOf(resource.kind).database(resource);
}

/** Every node besides the bastions that authenticates to /v1/bastion (SSH target hosts), by node id. */
export function resourceNodes(resources: ResourceConfig[], env: NodeJS.ProcessEnv): Record<string, SshNodeCredential> {
  const nodes: Record<string, SshNodeCredential> = {};
  resources.forEach((resource, i) => Object.assign(nodes, kindOf(resource.kind).nodes?.(resource, `resources[${i}]`, env)));
  return nodes;
}

/** A provider that passes each call to the provider of its resource's kind. */
export function routeByResource(providers: ReadonlyMap<string, CredentialProvider>, kindOfResource: (resourceId: string) => string | undefined): CredentialProvider {
  if (providers.size === 1) return [...providers.values()][0]!;
  const pick = (resourceId: string): CredentialProvider => {
    const provider = providers.get(kindOfResource(resourceId) ?? '');
    if (!provider) throw new CredentialError('unknown_resource', `no resource "${resourceId}" is configured`);
    return provider;
  };
  const all = [...providers.values()];
  return {
    kind: [...providers.keys()].join('+'),
    issue: (input) => pick(input.resourceId).issue(input),
    extend: (input) => pick(input.resourceId).extend(input),
    rotate: (input) => pick(input.resourceId).rotate(input),
    revoke: (input) => pick(input.resourceId).revoke(input),
    isolationProblems: async () => (await Promise.all(all.map((p) => p.isolationProblems?.() ?? []))).flat(),
    notices: async () => (await Promise.all(all.map((p) => p.notices?.() ?? []))).flat(),
    close: async () => { await Promise.all(all.map((p) => p.close())); },
  };
}
