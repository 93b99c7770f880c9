// SSH sessions in the audit log (the lifecycle's hash chain, through lookup.auditReported): how a node's rows are
// named, and the `opened` row written when a connection's pid is first recorded for a grant.
import type { FastifyRequest } from 'fastify';
import { sshFingerprint } from './key-lines';
import type { Caller } from './nodes';
import type { BastionGrantLookup } from './seam';
import type { BastionSessionStore } from './sessions';

/** Where the session routes read grants and keep pids (BastionRoutesOptions). */
export interface SessionStores {
  lookup: BastionGrantLookup;
  sessions: BastionSessionStore;
}

/** The audit action of an SSH session on this node: `bastion.session.*`, or `host.session.*` on a target host. */
export const sessionAction = (node: Caller, what: 'opened' | 'killed' | 'closed') => `${node.host ? 'host' : 'bastion'}.session.${what}`;
export const actorOf = (node: Caller) => (node.host ? `host:${node.host.resourceId}` : `bastion:${node.id}`);
export const whereOf = (node: Caller) => (node.host ? { hostId: node.host.resourceId } : { bastionId: node.id });

/**
 * `bastion.session.opened` in the audit log. False when the row could not be written: the session is then not
 * allowed (no SSH use the audit log does not know of), and its pid is forgotten so that a later report of the
 * same connection (sshd runs the key command twice) is new again and tries the audit once more.
 */
export async function auditOpened(stores: SessionStores, request: FastifyRequest, node: Caller, session: { grantId: string; pid: number; owner?: string; user?: string; from?: string; key?: string; via: 'key-lookup' | 'report' }): Promise<boolean> {
  const { grantId, pid, owner, user, from, key, via } = session;
  if (!stores.lookup.auditReported) return true;
  try {
    await stores.lookup.auditReported([{
      actor: actorOf(node), action: sessionAction(node, 'opened'), grantId, ...(owner ? { subject: owner } : {}),
      ...(node.host ? { resourceId: node.host.resourceId } : {}),
      detail: { ...whereOf(node), pid, via, ...(user ? { [node.host ? 'login' : 'user']: user } : {}), ...(from ? { from } : {}), ...(key ? { keyFingerprint: sshFingerprint(key) } : {}) },
    }]);
    return true;
  } catch (error) {
    request.log.error({ err: error, grantId }, 'could not audit the ssh session: it is refused');
    await stores.sessions.forget(node.id, grantId, [pid]).catch(() => undefined);
    return false;
  }
}
