// Policy versions (#25): a policy's version number changes exactly when its content hash does, and each version's
// content is kept in policy_versions, so a request recorded under a version is still decided under it after a live
// reload or a restart, on any instance — and admins can read the history with diffs.
import type { PolicyConfig, ServerConfig } from '../config';
import { canonicalJson, policyHash } from '../config';
import type { Db } from '../storage/db';
import type { AuditInput } from '../lifecycle/audit';
import type { TxContext } from '../lifecycle/write-queue';
import { entryDiff } from './changes';

export interface PolicyVersionRef { policyId: string; version: number; hash: string }

export interface PolicyVersionEntry extends PolicyVersionRef {
  createdAt: number;
  /** The policy's content; undefined for a version recorded before bodies were kept (migration 0014). */
  policy?: PolicyConfig;
  /** Unified diff from the version before (empty for a first version; a note when either body is unknown). */
  diff: string;
}

const key = (policyId: string, version: number) => `${policyId}@${version}`;

export class PolicyVersions {
  /** Bodies by policy@version: a version's content never changes once recorded. */
  private readonly bodies = new Map<string, PolicyConfig>();

  constructor(private readonly db: Db) {}

  /**
   * Inside an exclusive change of the write queue (instances must not both insert a next version): an unchanged
   * policy keeps its version, a new or changed one gets the next, with a `policy.version` audit row. Returns the
   * versions of every policy; call `remember` with them once the change has committed.
   */
  async record(tx: TxContext, policies: ServerConfig['policies'], now: number, extra: Pick<AuditInput, 'actor'>): Promise<{ current: Map<string, PolicyVersionRef>; created: PolicyVersionRef[] }> {
    const current = new Map<string, PolicyVersionRef>();
    const created: PolicyVersionRef[] = [];
    for (const [policyId, policy] of Object.entries(policies)) {
      const hash = policyHash(policy);
      const body = canonicalJson(policy);
      const latest = await tx.trx.selectFrom('policy_versions').selectAll().where('policy_id', '=', policyId).orderBy('version', 'desc').limit(1).executeTakeFirst();
      if (latest && latest.hash === hash) {
        if (latest.body === null) await tx.trx.updateTable('policy_versions').set({ body }).where('policy_id', '=', policyId).where('version', '=', latest.version).execute();
        current.set(policyId, { policyId, version: latest.version, hash });
        continue;
      }
      const version = (latest?.version ?? 0) + 1;
      await tx.trx.insertInto('policy_versions').values({ policy_id: policyId, version, hash, created_at: now, body }).execute();
      await tx.audit({ at: now, actor: extra.actor, action: 'policy.version', reason: latest ? 'policy changed' : 'policy added', policyVersion: version, detail: { policyId, hash } });
      const ref = { policyId, version, hash };
      current.set(policyId, ref);
      created.push(ref);
    }
    return { current, created };
  }

  /** After the change that recorded them committed: their bodies are known without a read. */
  remember(config: ServerConfig, versions: Map<string, PolicyVersionRef>): void {
    for (const [policyId, ref] of versions) this.bodies.set(key(policyId, ref.version), config.policies[policyId]!);
  }

  /** The content of one version (recorded by this instance or another), or undefined if it was never kept. */
  async policyAt(policyId: string, version: number): Promise<PolicyConfig | undefined> {
    const known = this.bodies.get(key(policyId, version));
    if (known) return known;
    const row = await this.db.selectFrom('policy_versions').select('body').where('policy_id', '=', policyId).where('version', '=', version).executeTakeFirst();
    if (!row?.body) return undefined;
    const policy = JSON.parse(row.body) as PolicyConfig;
    this.bodies.set(key(policyId, version), policy);
    return policy;
  }

  /** Versions newest first (of one policy, or all), each with its diff from the version before it. */
  async history(options: { policyId?: string; limit: number }): Promise<PolicyVersionEntry[]> {
    let query = this.db.selectFrom('policy_versions').selectAll().orderBy('created_at', 'desc').orderBy('policy_id').orderBy('version', 'desc').limit(options.limit);
    if (options.policyId) query = query.where('policy_id', '=', options.policyId);
    const rows = await query.execute();
    const out: PolicyVersionEntry[] = [];
    for (const row of rows) {
      const policy = row.body ? JSON.parse(row.body) as PolicyConfig : undefined;
      const before = row.version > 1 ? await this.policyAt(row.policy_id, row.version - 1) : undefined;
      const name = `policies/${row.policy_id}`;
      const diff = row.version === 1 ? entryDiff(name, undefined, policy)
        : policy && before ? entryDiff(name, before, policy)
          : `${name}: version ${row.version - 1} or ${row.version} was recorded before policy contents were kept; only their hashes are known`;
      out.push({ policyId: row.policy_id, version: row.version, hash: row.hash, createdAt: Number(row.created_at), ...(policy ? { policy } : {}), diff });
    }
    return out;
  }
}
