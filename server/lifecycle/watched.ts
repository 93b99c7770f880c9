// What admins watch on /metrics (#25), read from storage at each scrape so every instance reports the shared truth:
// requests waiting by state, active grants, and how long the oldest ended grant has waited for its credentials to be
// revoked (a growing age means a database refuses revocations: the grant's role still exists).
import { sql } from 'kysely';
import type { Db } from '../storage/db';
import { REVOKING } from './revocation';

export interface Watched {
  pending: Record<'pending_stepup' | 'pending_approval', number>;
  activeGrants: number;
  /** Epoch ms the oldest ended grant still waiting for revocation ended at, if any. */
  oldestUnrevokedEnd: number | undefined;
}

export async function readWatched(db: Db): Promise<Watched> {
  const [pending, active, backlog] = await Promise.all([
    db.selectFrom('requests').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).where('state', 'in', ['pending_stepup', 'pending_approval']).groupBy('state').execute(),
    db.selectFrom('grants').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'active').executeTakeFirst(),
    // An active grant's credentials are "pending" revocation from the start; only an ended one is a backlog.
    db.selectFrom('grants').select((eb) => eb.fn.min<number>('ended_at').as('oldest')).where('revocation', 'in', REVOKING).where('state', '<>', sql.lit('active')).executeTakeFirst(),
  ]);
  const count = (state: string) => Number(pending.find((p) => p.state === state)?.n ?? 0);
  return {
    pending: { pending_stepup: count('pending_stepup'), pending_approval: count('pending_approval') },
    activeGrants: Number(active?.n ?? 0),
    oldestUnrevokedEnd: backlog?.oldest === null || backlog?.oldest === undefined ? undefined : Number(backlog.oldest),
  };
}
