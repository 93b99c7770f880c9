// What a resource kind brings to the server: a folder under server/targets/<kind>/ with its config schema
// (config.ts), its credential provider (issue, extend, rotate, revoke; its start-up checks) and this description,
// listed once in registry.ts. The lifecycle never names a kind: it calls the one provider the registry composes.
import type { SecretRef } from '../config-base';
import type { CredentialProvider } from '../credentials/provider';

export interface TargetKind<R extends { id: string; kind: string }> {
  readonly kind: R['kind'];
  /** Every secret reference of one resource, with where it sits (`where` is the resource's own path, `resources[2]`). */
  secretRefs(resource: R, where: string): { where: string; ref: SecretRef }[];
  /** The credential provider for every resource of this kind in the config; secrets are resolved here, at start. */
  provider(resources: { resource: R; where: string }[], env: NodeJS.ProcessEnv): CredentialProvider;
}
