// The sessions a node reports: POST /v1/bastion/sessions records an sshd connection process serving a grant (for key
// programs that report the pid after the lookup), audited as `*.session.opened`; POST /v1/bastion/sessions/ended is the
// companion's account of a grant's end (or, with cause `rekeyed`, of its old key's end): which recorded sessions it
// killed, which had closed already, and what each carried, audited as `*.session.killed` / `*.session.closed`.
import { z } from 'zod';
import type { Route } from '../http/router';
import type { ReportedAudit } from '../lifecycle/audit';
import { callerOf } from './nodes';
import { BastionError, ClientAddress, Pid, tags, unavailable } from './route-schemas';
import { actorOf, auditOpened, sessionAction, whereOf, type SessionStores } from './session-audit';
import type { BastionGrantLookup } from './seam';

const SessionBody = z.strictObject({
  grantId: z.string().min(1).max(200), pid: Pid,
  user: z.string().max(256).optional().describe('the login user sshd asked about'), from: ClientAddress.optional(),
});
const SessionsEndedBody = z.strictObject({
  grantId: z.string().min(1).max(200),
  killed: z.array(Pid).max(10_000).default([]).describe('recorded sessions the companion found open and ended'),
  closed: z.array(Pid).max(10_000).default([]).describe('recorded sessions that had closed before the grant ended'),
  traffic: z.array(z.strictObject({
    pid: Pid,
    bytesFromClient: z.number().int().min(0).describe('bytes the client sent on the SSH connection (kernel TCP counter, encrypted)'),
    bytesToClient: z.number().int().min(0).describe('bytes the client acknowledged receiving on the SSH connection'),
    from: ClientAddress.optional(),
    countedAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO instant').describe('when the counters were read'),
  })).max(10_000).default([]).describe("what each session's connection carried, when the companion saw its counters"),
  cause: z.literal('rekeyed').optional().describe('the grant goes on with a new key: these are the sessions of the old one'),
});
const SessionsEnded = z.object({
  audited: z.number().int().describe('sessions whose end is now in the audit log'),
  ignored: z.array(z.number().int()).describe('pids not on record for this grant on this bastion (nothing audited)'),
});

/** The session report routes. Nothing of `stores` is touched until a handler runs. */
export function declareSessionRoutes(stores: SessionStores): Route[] {
  return [
    {
      method: 'POST', url: '/v1/bastion/sessions', access: 'bastion',
      doc: {
        operationId: 'recordBastionSession', summary: 'Record an sshd connection process serving a grant (its end kills it); a new one is audited as bastion.session.opened', tags, body: SessionBody,
        response: { description: 'Recorded' }, status: 204,
        answers: { 400: { description: 'Malformed body', type: 'application/json', schema: BastionError }, 503: unavailable },
      },
      handler: async (request, reply) => {
        const node = callerOf(request);
        const parsed = SessionBody.safeParse(request.body);
        if (!parsed.success) return reply.code(400).send({ code: 'invalid_body', message: parsed.error.message });
        const { grantId, pid, user, from } = parsed.data;
        let fresh: boolean;
        let owner: string | undefined;
        try {
          fresh = await stores.sessions.record(node.id, grantId, pid);
          if (fresh) owner = (await stores.lookup.grantById?.(grantId))?.owner;
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not record a bastion session');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the session could not be recorded; try again' });
        }
        if (fresh && !(await auditOpened(stores, request, node, { grantId, pid, owner, user, from, via: 'report' }))) {
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the session could not be audited; try again' });
        }
        return reply.code(204).send();
      },
    },
    {
      method: 'POST', url: '/v1/bastion/sessions/ended', access: 'bastion',
      doc: {
        operationId: 'reportBastionSessionsEnded',
        summary: "The companion's account of a grant's end: the recorded sessions it killed and those already closed, audited as bastion.session.killed / bastion.session.closed",
        tags, body: SessionsEndedBody, response: SessionsEnded,
        answers: {
          400: { description: 'Malformed body', type: 'application/json', schema: BastionError },
          404: { description: 'No such grant', type: 'application/json', schema: BastionError },
          409: { description: 'The grant has not ended: its sessions are not over', type: 'application/json', schema: BastionError },
          503: unavailable,
        },
      },
      handler: async (request, reply) => {
        const node = callerOf(request);
        const parsed = SessionsEndedBody.safeParse(request.body);
        if (!parsed.success) return reply.code(400).send({ code: 'invalid_body', message: parsed.error.message });
        const { grantId } = parsed.data;
        const killed = new Set(parsed.data.killed);
        const closed = new Set(parsed.data.closed.filter((pid) => !killed.has(pid)));
        let grant: Awaited<ReturnType<NonNullable<BastionGrantLookup['grantById']>>>;
        let recorded: Set<number>;
        try {
          grant = await stores.lookup.grantById?.(grantId);
          recorded = new Set((await stores.sessions.pidsFor(node.id, [grantId])).get(grantId) ?? []);
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not read a grant\'s sessions for their end');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the sessions could not be read; try again' });
        }
        if (stores.lookup.grantById && !grant) return reply.code(404).send({ code: 'grant_not_found', message: 'no such grant' });
        const rekeyed = parsed.data.cause === 'rekeyed';
        if (grant && !grant.endedAt && !rekeyed) return reply.code(409).send({ code: 'grant_active', message: 'the grant has not ended' });
        // Only sessions this bastion recorded for this grant: a report cannot write rows about anything else, and a
        // session whose end is already on record (a companion restarting catches up on recent ends, or retries a report
        // still being handled) is not recorded twice — the pids are taken off the record first, and only those this
        // report took are audited; if the audit cannot be written they are put back, so a retry finds them.
        let claimed: Set<number>;
        try {
          claimed = new Set(await stores.sessions.forget(node.id, grantId, [...killed, ...closed].filter((pid) => recorded.has(pid))));
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not take a grant\'s sessions off the record for their end');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the sessions\' end could not be recorded; try again' });
        }
        const rows: ReportedAudit[] = [];
        const ended: number[] = [];
        const how = grant ? (grant.endReason ?? grant.state) : undefined;
        const counted = new Map(parsed.data.traffic.map((t) => [t.pid, t]));
        for (const [pids, action, reason] of [
          [killed, sessionAction(node, 'killed'), rekeyed
            ? 'the grant was taken back with a new key: the companion closed the connection opened with the old one'
            : `the grant ended${how ? ` (${how})` : ''}: the companion closed the connection`],
          [closed, sessionAction(node, 'closed'), rekeyed ? 'the connection had closed before the grant was taken back with a new key' : 'the connection had closed before the grant ended'],
        ] as const) {
          for (const pid of pids) {
            if (!claimed.has(pid)) continue;
            ended.push(pid);
            const t = counted.get(pid);
            rows.push({
              actor: actorOf(node), action, grantId, reason,
              ...(grant ? { subject: grant.owner, resourceId: grant.resourceId } : {}),
              detail: {
                ...whereOf(node), pid, ...(grant?.endedAt ? { grantEndedAt: grant.endedAt } : {}), ...(rekeyed ? { cause: 'rekeyed' } : {}),
                ...(t ? { bytesFromClient: t.bytesFromClient, bytesToClient: t.bytesToClient, ...(t.from ? { from: t.from } : {}), bytesCountedAt: t.countedAt } : {}),
              },
            });
          }
        }
        try {
          if (rows.length > 0) await stores.lookup.auditReported?.(rows);
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not audit the end of a grant\'s sessions');
          await Promise.all(ended.map((pid) => stores.sessions.record(node.id, grantId, pid))).catch(() => undefined);
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the sessions\' end could not be recorded; try again' });
        }
        return { audited: ended.length, ignored: [...killed, ...closed].filter((pid) => !claimed.has(pid)) };
      },
    },
  ];
}
