// Which sshd connection processes serve which grant, as reported by the bastion's key command (its parent pid is
// the per-connection sshd monitor). The kill companion receives these pids with each grant-ended event.
// In memory by default: after a server restart the pids of connections made before it are unknown (the grant's
// key still stops working; see docs/bastion.md for the idle-timeout backstops).

export interface BastionSessionStore {
  record(bastionId: string, grantId: string, pid: number): void;
  pidsFor(bastionId: string, grantId: string): number[];
  /** Drop what is known about a grant (after its end has been delivered for long enough). */
  forget(bastionId: string, grantId: string): void;
}

export function createMemorySessionStore(options: { maxGrants?: number } = {}): BastionSessionStore {
  const maxGrants = options.maxGrants ?? 50_000;
  const byGrant = new Map<string, Set<number>>();
  const byPid = new Map<string, string>();
  const grantKey = (bastionId: string, grantId: string) => `${bastionId}\u0000${grantId}`;
  const pidKey = (bastionId: string, pid: number) => `${bastionId}\u0000${pid}`;

  return {
    record(bastionId, grantId, pid) {
      const gk = grantKey(bastionId, grantId);
      const pk = pidKey(bastionId, pid);
      // A pid is one live process at a time: if it was recorded for another grant, that process has exited and
      // the pid was reused, so it must no longer be killed when the other grant ends.
      const previous = byPid.get(pk);
      if (previous !== undefined && previous !== gk) byGrant.get(previous)?.delete(pid);
      byPid.set(pk, gk);
      let pids = byGrant.get(gk);
      if (!pids) {
        if (byGrant.size >= maxGrants) {
          const oldest = byGrant.keys().next().value;
          if (oldest !== undefined) {
            for (const p of byGrant.get(oldest) ?? []) byPid.delete(`${oldest.split('\u0000')[0]}\u0000${p}`);
            byGrant.delete(oldest);
          }
        }
        pids = new Set();
        byGrant.set(gk, pids);
      }
      pids.add(pid);
    },
    pidsFor(bastionId, grantId) {
      return [...(byGrant.get(grantKey(bastionId, grantId)) ?? [])];
    },
    forget(bastionId, grantId) {
      const gk = grantKey(bastionId, grantId);
      for (const pid of byGrant.get(gk) ?? []) {
        const pk = pidKey(bastionId, pid);
        if (byPid.get(pk) === gk) byPid.delete(pk);
      }
      byGrant.delete(gk);
    },
  };
}
