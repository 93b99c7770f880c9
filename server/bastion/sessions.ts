// Which sshd connection processes serve which grant, as reported by the bastion's key command (its parent pid is
// the per-connection sshd monitor). The kill companion receives these pids with each grant-ended event.
// Kept in the server's database: with several instances behind a load balancer the key command may reach one
// instance while the companion streams ends from another, and a restart must not forget the connections made before
// it. The end is only sent after it committed, so a pid recorded (committed) before it is always included.
// A row leaves when the companion reports what became of its session at the grant's end (POST /sessions/ended, which
// audits it), or at the latest when it is pruned, past the retention.
import type { Clock } from '../../shared/domain/clock';
import type { Db } from '../storage/db';

export interface BastionSessionStore {
  /**
   * Record that this sshd process on this bastion serves this grant (replaces what the pid served before). True when
   * it is new: sshd runs the key command twice per login, and only the first report opens a session in the audit log.
   */
  record(bastionId: string, grantId: string, pid: number): Promise<boolean>;
  /**
   * Drop these pids of this grant on this bastion; returns those this call removed. Two reports of the same end at
   * once (a companion's retry, a second reporter) each get only the pids they removed, so each end is audited once.
   */
  forget(bastionId: string, grantId: string, pids: readonly number[]): Promise<number[]>;
  /**
   * The recorded pids of each of these grants on this bastion (a grant without any is absent from the map); with
   * `recordedUntil` (epoch ms), only those recorded until then (a rekey: the sessions opened with the old key).
   */
  pidsFor(bastionId: string, grantIds: readonly string[], recordedUntil?: number): Promise<Map<string, number[]>>;
  /**
   * The grants not ended yet that have sessions recorded on this bastion, each with its deadline (epoch ms, moved by
   * an extension) and pids: what the companion ends on its own at a deadline when no server answers.
   */
  live(bastionId: string): Promise<Array<{ grantId: string; resourceId: string; endsAt: number; pids: number[] }>>;
  /**
   * Drop the rows recorded more than `olderThanMs` ago of grants that ended more than `olderThanMs` ago (or are not
   * known at all): what the companion may still ask for with `ended?since=` is kept. Returns how many rows went.
   */
  prune(olderThanMs: number): Promise<number>;
}

/** Large enough for one round trip per burst of ends, small enough for any dialect's bound-parameter limit. */
const CHUNK = 500;

export function createDbSessionStore(db: Db, options: { clock?: Pick<Clock, 'now'> } = {}): BastionSessionStore {
  const now = () => options.clock?.now() ?? Date.now();
  return {
    async record(bastionId, grantId, pid) {
      // A pid is one live process at a time: if it was recorded for another grant, that process has exited and the
      // pid was reused, so it must no longer be killed when the other grant ends. The primary key (bastion, pid)
      // makes that one upsert, atomic on both dialects however many instances record at once. The same pid reported
      // again for the same grant (sshd's second run of the key command) changes nothing and is not new.
      const result = await db.insertInto('bastion_sessions')
        .values({ bastion_id: bastionId, pid, grant_id: grantId, recorded_at: now() })
        .onConflict((oc) => oc.columns(['bastion_id', 'pid'])
          .doUpdateSet((eb) => ({ grant_id: eb.ref('excluded.grant_id'), recorded_at: eb.ref('excluded.recorded_at') }))
          .where((eb) => eb('bastion_sessions.grant_id', '<>', eb.ref('excluded.grant_id'))))
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },
    async forget(bastionId, grantId, pids) {
      const removed: number[] = [];
      for (let start = 0; start < pids.length; start += CHUNK) {
        const rows = await db.deleteFrom('bastion_sessions').where('bastion_id', '=', bastionId).where('grant_id', '=', grantId)
          .where('pid', 'in', pids.slice(start, start + CHUNK)).returning('pid').execute();
        removed.push(...rows.map((r) => Number(r.pid)));
      }
      return removed;
    },
    async pidsFor(bastionId, grantIds, recordedUntil) {
      const found = new Map<string, number[]>();
      const unique = [...new Set(grantIds)];
      for (let start = 0; start < unique.length; start += CHUNK) {
        const rows = await db.selectFrom('bastion_sessions').select(['grant_id', 'pid'])
          .where('bastion_id', '=', bastionId).where('grant_id', 'in', unique.slice(start, start + CHUNK))
          .$if(recordedUntil !== undefined, (q) => q.where('recorded_at', '<=', recordedUntil!))
          .orderBy('pid').execute();
        for (const row of rows) {
          const pids = found.get(row.grant_id) ?? [];
          pids.push(Number(row.pid));
          found.set(row.grant_id, pids);
        }
      }
      return found;
    },
    async live(bastionId) {
      const rows = await db.selectFrom('bastion_sessions')
        .innerJoin('grants', 'grants.id', 'bastion_sessions.grant_id')
        .select(['bastion_sessions.grant_id', 'bastion_sessions.pid', 'grants.resource_id', 'grants.ends_at'])
        .where('bastion_sessions.bastion_id', '=', bastionId).where('grants.ended_at', 'is', null)
        .orderBy('bastion_sessions.grant_id').orderBy('bastion_sessions.pid').execute();
      const found = new Map<string, { grantId: string; resourceId: string; endsAt: number; pids: number[] }>();
      for (const row of rows) {
        const entry = found.get(row.grant_id) ?? { grantId: row.grant_id, resourceId: row.resource_id, endsAt: Number(row.ends_at), pids: [] };
        entry.pids.push(Number(row.pid));
        found.set(row.grant_id, entry);
      }
      return [...found.values()];
    },
    async prune(olderThanMs) {
      const at = now() - olderThanMs;
      const result = await db.deleteFrom('bastion_sessions')
        .where('recorded_at', '<', at)
        .where((eb) => eb.not(eb.exists(
          eb.selectFrom('grants').select('grants.id')
            .whereRef('grants.id', '=', 'bastion_sessions.grant_id')
            .where((g) => g.or([g('grants.ended_at', 'is', null), g('grants.ended_at', '>=', at)])),
        )))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
