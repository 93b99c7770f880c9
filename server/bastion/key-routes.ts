// GET /v1/bastion/authorized-keys: sshd's AuthorizedKeysCommand asks, through the key program, whether a key may log
// in. The answer is the one key line of the active grant owning that key on the calling node, or an empty body (sshd
// then refuses). With the connection's pid, the session is recorded (its grant's end kills it) and audited first.
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Route } from '../http/router';
import { authorizedKeyLine, hostAuthorizedKeyLine, isEd25519KeyBody } from './key-lines';
import { callerOf, type Caller } from './nodes';
import { ClientAddress, tags } from './route-schemas';
import { auditOpened, type SessionStores } from './session-audit';
import type { BastionGrant } from './seam';

const KeysQuery = z.object({
  user: z.string().max(256).optional(),
  type: z.string().max(64),
  key: z.string().max(4096),
  pid: z.coerce.number().int().min(2).max(2 ** 31).optional(),
  from: ClientAddress.optional(),
});

/** The key lookup route. Nothing of `stores` is touched until a handler runs. */
export function declareKeyRoutes(stores: SessionStores): Route[] {
  /**
   * The active grant this node serves for this key and login, and the key line sshd gets; undefined when none. On an
   * SSH target host, a login the grant's level does not name is refused here, whatever sshd itself would let in.
   */
  const activeFor = async (request: FastifyRequest, node: Caller, key: string, user: string | undefined): Promise<{ grant: Pick<BastionGrant, 'grantId' | 'owner' | 'endsAt'>; line: string | undefined } | undefined> => {
    if (node.host) {
      const grant = await stores.lookup.findActiveHostGrant?.(node.host.resourceId, 'ssh-ed25519', key);
      if (!grant) return undefined;
      if (!user || !(node.host.logins[grant.level] ?? []).includes(user)) {
        request.log.info({ grantId: grant.grantId, hostId: node.host.resourceId, login: user }, 'a login the grant\'s level does not name: refused');
        return undefined;
      }
      return { grant, line: hostAuthorizedKeyLine(grant, key) };
    }
    const grant = await stores.lookup.findActiveGrantByKey(node.id, 'ssh-ed25519', key);
    return grant && { grant, line: authorizedKeyLine(grant, key) };
  };

  /**
   * Record the connection's pid before sshd gets the key line, and audit the session when the pid is new for the
   * grant. False when the grant ended meanwhile: its end may have read the pids before this one was written, so the
   * login is refused instead of becoming a connection nobody ends; false too when the audit row cannot be written.
   * A storage error while recording is logged and the login allowed (the key line still stops at the grant's end,
   * and the role is dropped then; only this connection would outlive it, until the idle backstops).
   */
  const recordSession = async (request: FastifyRequest, node: Caller, grant: Pick<BastionGrant, 'grantId' | 'owner'>, session: { pid: number; key: string; user?: string; from?: string }): Promise<boolean> => {
    const { grantId } = grant;
    let fresh = true;
    try {
      fresh = await stores.sessions.record(node.id, grantId, session.pid);
    } catch (error) {
      request.log.error({ err: error, grantId }, 'could not record the ssh session: the grant\'s end will not close this connection');
    }
    try {
      const still = await activeFor(request, node, session.key, session.user);
      if (still?.grant.grantId !== grantId) {
        // Refused: no session comes of it. A row this call wrote would otherwise wait for an end report forever.
        if (fresh) await stores.sessions.forget(node.id, grantId, [session.pid]).catch(() => undefined);
        return false;
      }
    } catch (error) {
      request.log.error({ err: error, grantId }, 'could not re-check the grant after recording its session');
    }
    if (!fresh) return true;
    return auditOpened(stores, request, node, { grantId, pid: session.pid, owner: grant.owner, user: session.user, from: session.from, key: session.key, via: 'key-lookup' });
  };

  return [
    {
      method: 'GET', url: '/v1/bastion/authorized-keys', access: 'bastion',
      doc: {
        operationId: 'bastionAuthorizedKeys', summary: "sshd's AuthorizedKeysCommand: the restricted key line of the active grant owning this key, or nothing", tags, query: KeysQuery,
        response: { description: 'One authorized_keys line, or an empty body (sshd then refuses the key)', type: 'text/plain' },
        answers: { 503: { description: 'The grant lookup failed (empty body; sshd refuses the key)' } },
      },
      handler: async (request, reply) => {
        reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store');
        const node = callerOf(request);
        const parsed = KeysQuery.safeParse(request.query);
        if (!parsed.success || parsed.data.type !== 'ssh-ed25519' || !isEd25519KeyBody(parsed.data.key)) return '';
        const { user, key, pid, from } = parsed.data;
        if (node.users && (!user || !node.users.includes(user))) return '';
        let found: Awaited<ReturnType<typeof activeFor>>;
        try {
          found = await activeFor(request, node, key, user);
        } catch (error) {
          request.log.error({ err: error }, 'ssh key lookup failed');
          return reply.code(503).send('');
        }
        if (!found) return '';
        const { grant, line } = found;
        if (!line) {
          request.log.error({ grantId: grant.grantId }, 'grant target cannot be written into a key line');
          return '';
        }
        if (pid !== undefined && !(await recordSession(request, node, grant, { pid, key, user, from }))) return '';
        return `${line}\n`;
      },
    },
  ];
}
