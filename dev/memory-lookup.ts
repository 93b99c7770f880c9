// A bastion grant lookup whose grants the caller adds and ends by hand: the bastion routes (server/bastion/routes.ts)
// tested and timed apart from the lifecycle, which implements the same seam over its store.
import { EventEmitter } from 'node:events';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion } from '../server/bastion/seam';

export interface LookupGrant extends BastionGrant {
  bastionId: string;
  keyBase64: string;
  endedAt?: Date;
}

export class MemoryLookup implements BastionGrantLookup {
  readonly grants = new Map<string, LookupGrant>();
  private readonly events = new EventEmitter();

  add(grant: LookupGrant): void {
    this.grants.set(grant.grantId, grant);
  }

  end(grantId: string, at = new Date()): void {
    const grant = this.grants.get(grantId);
    if (!grant || grant.endedAt) return;
    grant.endedAt = at;
    const event: GrantEndedForBastion = { grantId, bastionId: grant.bastionId, keyBase64: grant.keyBase64, at };
    this.events.emit('ended', event);
  }

  async findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined> {
    if (keyType !== 'ssh-ed25519') return undefined;
    for (const grant of this.grants.values()) {
      if (grant.bastionId === bastionId && grant.keyBase64 === keyBase64 && !grant.endedAt && grant.endsAt.getTime() > Date.now()) {
        return { grantId: grant.grantId, owner: grant.owner, endsAt: grant.endsAt, target: grant.target };
      }
    }
    return undefined;
  }

  async endedSince(bastionId: string, since: Date): Promise<GrantEndedForBastion[]> {
    return [...this.grants.values()]
      .filter((g) => g.bastionId === bastionId && g.endedAt && g.endedAt.getTime() > since.getTime())
      .sort((a, b) => a.endedAt!.getTime() - b.endedAt!.getTime())
      .map((g) => ({ grantId: g.grantId, bastionId: g.bastionId, keyBase64: g.keyBase64, at: g.endedAt! }));
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void): () => void {
    this.events.on('ended', listener);
    return () => this.events.off('ended', listener);
  }
}
