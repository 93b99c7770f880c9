// Idle end (policy `idleEnd`, off by default): agents heartbeat the grants they hold; a grant whose agent has been
// silent longer than its policy's idleEnd is ended with reason `idle` (a lid closed for good, a laptop lost). Silence
// is counted from the last heartbeat, or from the grant's start when none came yet — and never from before this
// instance started: agents cannot heartbeat a server that is down, and a restart must not end every grant whose
// heartbeats it missed (other instances, up meanwhile, got them and end idle grants on time). The safety-net sweep
// (timers.ts) looks for idle grants, so an idle end comes up to one sweep interval after the limit.
import { sql } from 'kysely';
import type { AuthUser } from '../identity/user';
import type { CatalogSource, GrantRow } from './support';
import type { Db } from '../storage/db';
import type { WriteQueue } from './write-queue';

/** How often agents heartbeat the grants they hold (the agent's side: agent/core/heartbeat.ts keeps the same pace). */
export const HEARTBEAT_EVERY_SECONDS = 30;

export interface IdleDeps {
  reads: Db;
  now: () => number;
  policies: CatalogSource;
  writes: Pick<WriteQueue, 'mutate'>;
  endGrant: (id: string, reason: string) => Promise<unknown>;
}

export class IdleEnds {
  private readonly startedAt: number;

  constructor(private readonly deps: IdleDeps) {
    this.startedAt = deps.now();
  }

  /** The owner's agent holds these grants: note it on those that are active and its own; returns which ones. */
  async heartbeat(user: AuthUser, grantIds: string[]): Promise<string[]> {
    const now = this.deps.now();
    const seen = await this.deps.writes.mutate(async ({ trx }) => trx.updateTable('grants').set({ agent_seen_at: now })
      .where('id', 'in', grantIds).where('owner', '=', user.sub).where('state', '=', sql.lit('active')).returning('id').execute());
    return seen.map((r) => r.id);
  }

  /** End every active grant whose agent has been silent longer than its policy allows. */
  async endIdle(): Promise<void> {
    const now = this.deps.now();
    const limits = new Map<string, number>();
    for (const resource of this.deps.policies.catalog.config.resources) {
      const idleEnd = this.deps.policies.catalog.entry(resource.id)?.policy.idleEnd;
      if (idleEnd !== undefined) limits.set(resource.id, idleEnd * 1000);
    }
    if (limits.size === 0) return;
    const rows: Pick<GrantRow, 'id' | 'resource_id' | 'starts_at' | 'agent_seen_at'>[] = await this.deps.reads.selectFrom('grants')
      .select(['id', 'resource_id', 'starts_at', 'agent_seen_at']).where('state', '=', sql.lit('active')).where('resource_id', 'in', [...limits.keys()]).execute();
    const idle = rows.filter((r) => Math.max(Number(r.agent_seen_at ?? r.starts_at), this.startedAt) + limits.get(r.resource_id)! <= now);
    await Promise.allSettled(idle.map((r) => this.deps.endGrant(r.id, 'idle')));
  }
}
