// What a resource kind brings to the server: a folder under server/targets/<kind>/ with its config schema
// (config.ts), its credential provider (issue, extend, rotate, revoke; its start-up checks) and this description,
// listed once in registry.ts. The lifecycle never names a kind: it calls the one provider the registry composes.
import type { SecretRef } from '../config-base';
import type { CredentialProvider } from '../credentials/provider';
import type { Connection } from '../../shared/contract/http';
import type { SshNodeCredential } from '../bastion/nodes';
import type { BastionSessionStore } from '../bastion/sessions';

/** What the server lends a kind's provider: the SSH sessions the key programs recorded (issue #23). */
export interface TargetDeps {
  /** Absent where no server database is at hand (a kind that needs it refuses to be built then). */
  sessions?: Pick<BastionSessionStore, 'pidsFor'>;
}

export interface TargetKind<R extends { id: string; kind: string }> {
  readonly kind: R['kind'];
  /** Every secret reference of one resource, with where it sits (`where` is the resource's own path, `resources[2]`). */
  secretRefs(resource: R, where: string): { where: string; ref: SecretRef }[];
  /** The credential provider for every resource of this kind in the config; secrets are resolved here, at start. */
  provider(resources: { resource: R; where: string }[], env: NodeJS.ProcessEnv, deps: TargetDeps): CredentialProvider;
  /** What the agent is told about the target at activation (and rekey): where it is, what to pin, what to name. */
  connectionTarget(resource: R): Connection['target'];
  /** The database a grant opens, as the catalog shows it ('' for a kind that has none). */
  database(resource: R): string;
  /**
   * Nodes besides the bastions that present a token to /v1/bastion for this resource (an SSH target host's key
   * program and companion), by node id, with their token resolved. None for most kinds.
   */
  nodes?(resource: R, where: string, env: NodeJS.ProcessEnv): Record<string, SshNodeCredential>;
}
