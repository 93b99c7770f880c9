// What the bastion asks of the lifecycle (BastionGrantLookup): the active grant behind an SSH key, and the grants
// that ended, as a catch-up read and as a stream (ends on this instance, and on other instances through the bus).
import { sql } from 'kysely';
import type { GrantState } from '../../shared/contract/http';
import type { Db } from '../storage/db';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion, HostGrant } from '../bastion/seam';
import type { EventBus } from './events';
import { hasRemoteEvents } from './pg-bus';
import type { Timers } from './timers';
import type { Logger } from './support';

const ENDED_STATES = new Set<GrantState>(['ended', 'released', 'revoked', 'failed']);

export interface BastionQueriesDeps {
  db: Db;
  /** Short reads by key (see Store.reads): on PostgreSQL, those issued together share one write. */
  reads: Db;
  /** True when other server instances may write the same database (PostgreSQL). */
  shared: boolean;
  bus: EventBus;
  now: () => number;
  log: Logger;
  timers: Pick<Timers, 'track'>;
}

export class BastionQueries implements BastionGrantLookup {
  private readonly db: Db;
  private readonly reads: Db;
  private readonly now: () => number;
  private readonly endedListeners = new Set<{ listener: (event: GrantEndedForBastion) => void; wanted: () => boolean }>();
  /** Grant ends from other instances already announced to this instance's bastion listeners. */
  private readonly remoteEnds = new Set<string>();

  constructor(private readonly deps: BastionQueriesDeps) {
    this.db = deps.db;
    this.reads = deps.reads;
    this.now = deps.now;
    // A bastion streams grant ends from whichever instance it is connected to: ends committed by other instances
    // reach this instance's listeners through the bus.
    if (deps.shared && hasRemoteEvents(deps.bus)) {
      deps.bus.onRemote((events) => {
        const ended = events.flatMap((e) => (e.event.type === 'grant.updated' && e.event.grant.endedAt && ENDED_STATES.has(e.event.grant.state) ? [e.event.grant.id] : []));
        if (ended.length > 0) void this.deps.timers.track(this.announceRemoteEnds(ended)).catch((error) => this.deps.log.error({ err: error }, 'could not announce grant ends from another instance'));
      }, () => this.wantsEnds());
    }
  }

  async findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined> {
    // The state is a literal: only then may a prepared statement's generic plan use grants_active_key, the one
    // index over keys (partial: active grants), instead of reading the whole table on every SSH connection.
    const row = await this.reads.selectFrom('grants').select(['id', 'owner', 'ends_at', 'target_host', 'target_port']).where('key_base64', '=', keyBase64)
      .where('key_type', '=', keyType).where('bastion_id', '=', bastionId).where('state', '=', sql.lit('active')).where('ends_at', '>', this.now()).where('db_username', 'is not', null).executeTakeFirst();
    return row ? { grantId: row.id, owner: row.owner, endsAt: Number(row.ends_at), target: { host: row.target_host, port: row.target_port } } : undefined;
  }

  async findActiveHostGrant(resourceId: string, keyType: string, keyBase64: string): Promise<HostGrant | undefined> {
    // As above (the same partial index over active grants' keys), on the grant's resource instead of its bastion.
    const row = await this.reads.selectFrom('grants').select(['id', 'owner', 'ends_at', 'level']).where('key_base64', '=', keyBase64)
      .where('key_type', '=', keyType).where('resource_id', '=', resourceId).where('state', '=', sql.lit('active')).where('ends_at', '>', this.now()).where('db_username', 'is not', null).executeTakeFirst();
    return row ? { grantId: row.id, owner: row.owner, endsAt: Number(row.ends_at), level: row.level } : undefined;
  }

  async endedSince(bastionId: string, since: number): Promise<GrantEndedForBastion[]> {
    const rows = await this.db.selectFrom('grants').select(['id', 'bastion_id', 'resource_id', 'key_base64', 'ended_at']).where('bastion_id', '=', bastionId)
      .where('ended_at', '>', since).orderBy('ended_at').limit(10_000).execute();
    return rows.map(toEnded);
  }

  async endedOnHostSince(resourceId: string, since: number): Promise<GrantEndedForBastion[]> {
    // grants_ended_resource (migration 0010), as grants_ended serves the bastion's catch-up.
    const rows = await this.db.selectFrom('grants').select(['id', 'bastion_id', 'resource_id', 'key_base64', 'ended_at']).where('resource_id', '=', resourceId)
      .where('ended_at', '>', since).orderBy('ended_at').limit(10_000).execute();
    return rows.map(toEnded);
  }

  onGrantEnded(listener: (event: GrantEndedForBastion) => void, wanted: () => boolean = () => true): () => void {
    const entry = { listener, wanted };
    this.endedListeners.add(entry);
    return () => this.endedListeners.delete(entry);
  }

  /** Whether any grant-end listener here wants ends now (else other instances' ends are not even looked up). */
  private wantsEnds(): boolean {
    for (const { wanted } of this.endedListeners) if (wanted()) return true;
    return false;
  }

  private async announceRemoteEnds(ids: string[]): Promise<void> {
    // Later updates of an ended grant (its revocation finishing) carry endedAt too: announce each end once.
    const fresh = ids.filter((id) => !this.remoteEnds.has(id));
    for (const id of fresh) {
      this.remoteEnds.add(id);
      if (this.remoteEnds.size > 10_000) this.remoteEnds.delete(this.remoteEnds.values().next().value!);
    }
    if (!this.wantsEnds() || fresh.length === 0) return;
    const rows = await this.db.selectFrom('grants').select(['id', 'bastion_id', 'resource_id', 'key_base64', 'ended_at']).where('id', 'in', fresh).where('ended_at', 'is not', null).execute();
    for (const row of rows) this.announce(toEnded(row));
  }

  /** Tell this instance's grant-end listeners (bastion streams) that a grant ended. */
  announce(ended: GrantEndedForBastion): void {
    for (const { listener } of this.endedListeners) {
      try { listener(ended); } catch (error) { this.deps.log.error({ err: error }, 'grant-ended listener failed'); }
    }
  }
}

function toEnded(row: { id: string; bastion_id: string; resource_id: string; key_base64: string; ended_at: number | null }): GrantEndedForBastion {
  return { grantId: row.id, bastionId: row.bastion_id, resourceId: row.resource_id, keyBase64: row.key_base64, at: Number(row.ended_at) };
}
