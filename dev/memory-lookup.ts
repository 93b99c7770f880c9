// A bastion grant lookup whose grants the caller adds and ends by hand: the bastion routes (server/bastion/routes.ts)
// tested and timed apart from the lifecycle, which implements the same seam over its store.
import { EventEmitter } from 'node:events';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion } from '../server/bastion/seam';

export interface LookupGrant extends BastionGrant {
  bastionId: string;
  keyBase64: string;
  /** Epoch ms. */
  endedAt?: number;
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
    const event: GrantEndedForBastion = { grantId, bastionId: grant.bastionId, keyBase64: grant.keyBase64, at };
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

  async endedSince(bastionId: string, since: number): Promise<GrantEndedForBastion[]> {
    return [...this.grants.values()]
      .filter((g) => g.bastionId === bastionId && g.endedAt !== undefined && g.endedAt > since)
      .sort((a, b) => a.endedAt! - b.endedAt!)
      .map((g) => ({ grantId: g.grantId, bastionId: g.bastionId, keyBase64: g.keyBase64, at: g.endedAt! }));
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void): () => void {
    this.events.on('ended', listener);
    return () => this.events.off('ended', listener);
  }
}
