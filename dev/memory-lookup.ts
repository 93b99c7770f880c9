// A bastion grant lookup whose grants the caller adds and ends by hand: the bastion routes (server/bastion/routes.ts)
// tested and timed apart from the lifecycle, which implements the same seam over its store.
import { EventEmitter } from 'node:events';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion, HostGrant } from '../server/bastion/seam';

export interface LookupGrant extends BastionGrant {
  bastionId: string;
  keyBase64: string;
  /** Epoch ms. */
  endedAt?: number;
  /** A grant on an SSH target host: the host's resource id and the grant's level. */
  host?: { resourceId: string; level: string };
}

export class MemoryLookup implements BastionGrantLookup {
  readonly grants = new Map<string, LookupGrant>();
  private readonly events = new EventEmitter();

  add(grant: LookupGrant): void {
    this.grants.set(grant.grantId, grant);
  }

  end(grantId: string, at = Date.now()): void {
    const grant = this.grants.get(grantId);
    if (!grant || grant.endedAt !== undefined) return;
    grant.endedAt = at;
    const event = toEnded(grant);
    this.events.emit('ended', event);
  }

  async findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined> {
    if (keyType !== 'ssh-ed25519') return undefined;
    for (const grant of this.grants.values()) {
      if (grant.bastionId === bastionId && grant.keyBase64 === keyBase64 && grant.endedAt === undefined && grant.endsAt > Date.now()) {
        return { grantId: grant.grantId, owner: grant.owner, endsAt: grant.endsAt, target: grant.target };
      }
    }
    return undefined;
  }

  async findActiveHostGrant(resourceId: string, keyType: string, keyBase64: string): Promise<HostGrant | undefined> {
    if (keyType !== 'ssh-ed25519') return undefined;
    for (const grant of this.grants.values()) {
      if (grant.host?.resourceId === resourceId && grant.keyBase64 === keyBase64 && grant.endedAt === undefined && grant.endsAt > Date.now()) {
        return { grantId: grant.grantId, owner: grant.owner, endsAt: grant.endsAt, level: grant.host.level };
      }
    }
    return undefined;
  }

  async endedSince(bastionId: string, since: number): Promise<GrantEndedForBastion[]> {
    return this.endedWhere((g) => g.bastionId === bastionId, since);
  }

  async endedOnHostSince(resourceId: string, since: number): Promise<GrantEndedForBastion[]> {
    return this.endedWhere((g) => g.host?.resourceId === resourceId, since);
  }

  private endedWhere(match: (grant: LookupGrant) => boolean, since: number): GrantEndedForBastion[] {
    return [...this.grants.values()]
      .filter((g) => match(g) && g.endedAt !== undefined && g.endedAt > since)
      .sort((a, b) => a.endedAt! - b.endedAt!)
      .map(toEnded);
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void): () => void {
    this.events.on('ended', listener);
    return () => this.events.off('ended', listener);
  }
}

function toEnded(grant: LookupGrant): GrantEndedForBastion {
  return { grantId: grant.grantId, bastionId: grant.bastionId, ...(grant.host ? { resourceId: grant.host.resourceId } : {}), keyBase64: grant.keyBase64, at: grant.endedAt! };
}
