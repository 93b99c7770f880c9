// What bastions ask the grant server, outside user auth (each bastion has its own bearer token):
//   GET /authorized-keys?user=&type=&key=&pid=  — for sshd's AuthorizedKeysCommand: the one key line of the active
//                                                grant owning that key, or an empty body (sshd then refuses).
//   GET /ended?since=<iso>                       — grant ends behind this bastion since an instant (catch-up).
//   GET /events                                  — the same ends, live, as server-sent events.
//   GET /live                                    — the grants not ended yet with sessions on this bastion, their
//                                                deadlines and pids: the companion ends them itself at a deadline
//                                                when no server answers then (issue #21).
//   POST /sessions {grantId, pid}                — record an sshd connection process serving a grant (alternative
//                                                to the `pid` query parameter, for key programs that report later).
//   POST /sessions/ended {grantId, killed, closed, traffic, cause} — the companion's account of a grant's end (or, with
//                                                cause `rekeyed`, of its old key's end): which recorded sessions it
//                                                killed, which had closed already, and what each carried.
// Every session is in the audit log (the lifecycle's hash chain, through lookup.auditReported): `bastion.session.opened`
// when a connection's pid is first recorded for a grant, and `bastion.session.killed` or `bastion.session.closed` when
// the companion reports the grant's end. OpenSSH 9.2 tells the key command neither bytes nor the client's address;
// the companion reads both from the kernel's counters of the session's TCP connection (traffic.ts), and the end rows
// carry them (`bytesFromClient`, `bytesToClient`, `from`, `bytesCountedAt`). Opened rows carry the key's fingerprint.
// An SSH target host (issue #23: a resource of kind ssh, reached through the bastion) speaks the same protocol with
// its own token: the same key program answers its sshd (a login line for the grant's level's logins instead of a
// forwarding line), the same companion kills its sessions at a grant's end, and its rows are `host.session.*`.
// They are declared for the router (server/http/router.ts) as 'bastion' routes: the router puts bastionTokenGuard in
// front of each, so no handler runs for a caller without a bastion's token. The grant server serves the declarations
// in its one route list; `bastionRoutes` serves them as a plugin (tests, benches) at the root or under /v1/bastion.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { serveRoutes, type Guard, type Route } from '../http/router';
import type { ReportedAudit } from '../lifecycle/audit';
import type { BastionGrant, BastionGrantLookup, GrantEndedForBastion, HostGrant } from './seam';
import type { BastionSessionStore } from './sessions';

/** What a node (a bastion, or an SSH target host) presents and may be answered about. */
export interface SshNodeCredential {
  token: string;
  /** Login users this node serves keys for (default: any). */
  users?: string[];
  /** Set for an SSH target host: the resource it is, and the logins each access level opens there. */
  host?: { resourceId: string; logins: Record<string, string[]> };
}

/** The node id of an SSH target host: `/` is in no config id, so it never meets a bastion's id. */
export const hostNodeId = (resourceId: string) => `host/${resourceId}`;

export interface BastionRoutesOptions {
  lookup: BastionGrantLookup;
  /** Node id → its credential. The token identifies the bastion (or target host: see hostNodeId). */
  bastions: Record<string, SshNodeCredential>;
  /**
   * Where pids reported by key commands are kept: the database shared by all instances (createDbSessionStore), so
   * the instance streaming an end knows pids recorded by any instance, and before a restart.
   */
  sessions: BastionSessionStore;
  /** SSE keep-alive comment interval; the companion reconnects when it hears nothing for 3 intervals. Default 15 s. */
  heartbeatMs?: number;
  /** How long pids of an ended grant are kept for catch-up by `ended?since=`. Default 1 h. */
  sessionRetentionMs?: number;
  /** How often rows past the retention are pruned. Default the retention, at most 10 min. */
  sessionPruneEveryMs?: number;
  /**
   * SSH target hosts first: the end of a grant on one of these resources reaches its bastion this long after its host
   * (default 500 ms). The host's companion then ends the session's whole process tree while its sshd still serves it;
   * were the bastion's cut first, the host's sshd would exit on its own and a command run without a TTY could outlive
   * it. The bastion's cut stays the backstop for a host that does not act. The key is refused on both from the end on.
   */
  hostFirst?: { resources: ReadonlySet<string>; ms?: number };
}

/** The event the companion receives: which key's grant ended and which sshd processes served it. */
export interface BastionEndedEvent {
  grantId: string;
  keyBase64: string;
  at: string;
  pids: number[];
  /** The grant goes on with a new key: end these sessions, opened with the old one (`keyBase64`). */
  cause?: 'rekeyed';
}

const KEY_BODY = /^[A-Za-z0-9+/]+={0,2}$/;
const HOSTNAME = /^[A-Za-z0-9._-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;

/** `YYYYMMDDHHMMSSZ` in UTC, the form sshd's expiry-time accepts (with Z, or sshd reads local time). */
export function sshExpiryTime(atMs: number): string {
  const at = new Date(atMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(at.getUTCFullYear(), 4)}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`
    + `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}Z`;
}

/** The key's fingerprint as sshd logs it (`SHA256:` + unpadded base64 of the blob's SHA-256): ties a row to sshd's log. */
export function sshFingerprint(keyBase64: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(keyBase64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** A plausible ssh-ed25519 public key body: base64 of a blob that starts with the key type. */
export function isEd25519KeyBody(keyBase64: string): boolean {
  if (!KEY_BODY.test(keyBase64) || keyBase64.length > 200) return false;
  const blob = Buffer.from(keyBase64, 'base64');
  return blob.length === 51 && blob.readUInt32BE(0) === 11 && blob.subarray(4, 15).toString('latin1') === 'ssh-ed25519';
}

/**
 * The authorized_keys line for a grant on an SSH target host: a login with a shell or a command and a TTY, nothing
 * forwarded (restrict, then pty back), until the grant's end. Undefined when it could not be written safely.
 */
export function hostAuthorizedKeyLine(grant: Pick<HostGrant, 'grantId' | 'endsAt'>, keyBase64: string): string | undefined {
  if (!isEd25519KeyBody(keyBase64) || Number.isNaN(new Date(grant.endsAt).getTime())) return undefined;
  const comment = `grant:${grant.grantId.replace(/[^A-Za-z0-9_.:-]/g, '_')}`;
  return `restrict,pty,expiry-time="${sshExpiryTime(grant.endsAt)}" ssh-ed25519 ${keyBase64} ${comment}`;
}

/**
 * The authorized_keys line for a grant: forwarding to the grant's one target only, until the grant's end, and no
 * command (restrict alone still lets `exec` run one, so the forced command is nologin). Undefined when any part
 * could not be written safely (the line is parsed by sshd as options; nothing may break out of a quoted value).
 */
export function authorizedKeyLine(grant: BastionGrant, keyBase64: string): string | undefined {
  const { host, port } = grant.target;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  let hostPart: string;
  if (HOSTNAME.test(host)) hostPart = host;
  else if (IPV6.test(host) && host.includes(':')) hostPart = `[${host}]`;
  else return undefined;
  if (!isEd25519KeyBody(keyBase64) || Number.isNaN(new Date(grant.endsAt).getTime())) return undefined;
  const comment = `grant:${grant.grantId.replace(/[^A-Za-z0-9_.:-]/g, '_')}`;
  return `restrict,port-forwarding,permitopen="${hostPart}:${port}",expiry-time="${sshExpiryTime(grant.endsAt)}",`
    + `command="/usr/sbin/nologin" ssh-ed25519 ${keyBase64} ${comment}`;
}

const Pid = z.number().int().min(2).max(2 ** 31);
const ClientAddress = z.string().max(64).refine((a) => isIP(a) !== 0, 'an IP address').describe("the SSH client's address, when the key program knows it");
const KeysQuery = z.object({
  user: z.string().max(256).optional(),
  type: z.string().max(64),
  key: z.string().max(4096),
  pid: z.coerce.number().int().min(2).max(2 ** 31).optional(),
  from: ClientAddress.optional(),
});
const EndedQuery = z.object({ since: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO instant') });
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
const BastionEnded = z.object({ grantId: z.string(), keyBase64: z.string(), at: z.string(), pids: z.array(z.number().int()), cause: z.literal('rekeyed').optional() });
const BastionLive = z.object({
  grants: z.array(z.object({
    grantId: z.string(),
    endsAt: z.string().describe("the grant's current deadline (an extension moves it)"),
    pids: z.array(z.number().int()).describe('the sshd processes recorded for the grant on this bastion'),
    afterMs: z.number().int().optional().describe("how long after the deadline this node acts: a bastion waits for an SSH target host's own companion"),
  })),
});
const BastionError = z.object({ code: z.string(), message: z.string() });

const digest = (value: string) => createHash('sha256').update(value).digest();

type Caller = { id: string } & Omit<SshNodeCredential, 'token'>;

/** Which node a request came from (set by bastionTokenGuard, which the router runs before every bastion route). */
const callers = new WeakMap<FastifyRequest, Caller>();

function callerOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  // Unreachable through the router; a handler reached some other way must not serve keys to nobody in particular.
  if (!caller) throw new Error('no bastion token was checked for this request');
  return caller;
}

/** The audit action of an SSH session on this node: `bastion.session.*`, or `host.session.*` on a target host. */
const sessionAction = (node: Caller, what: 'opened' | 'killed' | 'closed') => `${node.host ? 'host' : 'bastion'}.session.${what}`;
const actorOf = (node: Caller) => (node.host ? `host:${node.host.resourceId}` : `bastion:${node.id}`);
const whereOf = (node: Caller) => (node.host ? { hostId: node.host.resourceId } : { bastionId: node.id });

/** The router's bastion check: the bearer token of one configured bastion, or 401 with an empty body. */
export function bastionTokenGuard(bastions: BastionRoutesOptions['bastions']): Guard {
  const credentials = Object.entries(bastions).map(([id, b]) => ({ id, digest: digest(b.token), users: b.users, host: b.host }));
  return async (request, reply) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([^\s]+)$/.exec(header) : null;
    let found: Caller | undefined;
    if (match?.[1]) {
      const presented = digest(match[1]);
      // Compare against every bastion, in constant time each, without stopping at the first match.
      for (const credential of credentials) {
        if (timingSafeEqual(presented, credential.digest) && found === undefined) found = { id: credential.id, users: credential.users, host: credential.host };
      }
    }
    if (found === undefined) {
      return reply.code(401).header('www-authenticate', 'Bearer').type('text/plain; charset=utf-8').send('');
    }
    callers.set(request, found);
  };
}

export interface BastionRouteSet {
  routes: Route[];
  /** Start what the handlers share on this app (grant-end subscription, session pruning) and stop it when it closes. */
  start(app: FastifyInstance): void;
}

/**
 * The bastion routes as declarations for the router. Nothing of `opts` is touched until `start` or a handler runs,
 * so the list can also be built just to document it.
 */
export function declareBastionRoutes(opts: Omit<BastionRoutesOptions, 'bastions'>): BastionRouteSet {
  /** Open event streams, by the node (bastion or target host) they serve. */
  const streams = new Set<{ bastionId: string; send: (event: BastionEndedEvent) => void; end: () => void }>();
  /** Set when the server starts closing: a stream whose request was still in its guard then must not stay open. */
  let closing = false;
  /** The nodes that act on a grant's end: its bastion, and its resource when that is an SSH target host. */
  const nodesOf = (ended: GrantEndedForBastion) => [ended.bastionId, ...(ended.resourceId ? [hostNodeId(ended.resourceId)] : [])];

  /** The events for these ends of one bastion, with the pids recorded (by any instance) until now. */
  const toEvents = async (bastionId: string, ended: GrantEndedForBastion[]): Promise<BastionEndedEvent[]> => {
    const ends = ended.filter((e) => !e.cause);
    const pids = ends.length ? await opts.sessions.pidsFor(bastionId, ends.map((e) => e.grantId)) : new Map<string, number[]>();
    // A rekey names only the sessions recorded until the key changed: those opened with the old key.
    for (const e of ended) if (e.cause) pids.set(`${e.grantId}@${e.at}`, (await opts.sessions.pidsFor(bastionId, [e.grantId], e.at)).get(e.grantId) ?? []);
    return ended.map((e) => ({
      grantId: e.grantId, keyBase64: e.keyBase64, at: new Date(e.at).toISOString(),
      pids: pids.get(e.cause ? `${e.grantId}@${e.at}` : e.grantId) ?? [], ...(e.cause ? { cause: e.cause } : {}),
    }));
  };

  const start = (app: FastifyInstance) => {
    const retentionMs = opts.sessionRetentionMs ?? 3_600_000;
    // Ends are sent in the order they happened (the companion catches up from the last instant it saw), so reading
    // their pids is serialised: one query per bastion for all the ends that arrived meanwhile (a burst of deadlines
    // costs a few round trips, not one each).
    const queued: Array<GrantEndedForBastion & { node: string }> = [];
    let sending = false;
    let sent: Promise<void> = Promise.resolve();
    const sendQueued = async () => {
      sending = true;
      try {
        while (queued.length > 0) {
          const batch = queued.splice(0);
          const byBastion = new Map<string, GrantEndedForBastion[]>();
          for (const ended of batch) {
            const list = byBastion.get(ended.node) ?? [];
            list.push(ended);
            byBastion.set(ended.node, list);
          }
          for (const [bastionId, ended] of byBastion) {
            let events: BastionEndedEvent[];
            try {
              events = await toEvents(bastionId, ended);
            } catch (error) {
              // Without its pids an end would kill nothing. Ending the bastion's streams instead makes the companion
              // reconnect and catch up through ended?since=, which reads the pids again (retrying until it can).
              app.log.error({ err: error, bastionId }, 'could not read the sessions of ended grants; closing the bastion\'s streams');
              for (const stream of streams) if (stream.bastionId === bastionId) stream.end();
              continue;
            }
            for (const stream of streams) {
              if (stream.bastionId === bastionId) for (const event of events) stream.send(event);
            }
          }
        }
      } finally {
        sending = false;
      }
    };

    const enqueue = (entries: Array<GrantEndedForBastion & { node: string }>) => {
      queued.push(...entries);
      if (!sending) sent = sendQueued().catch((error: unknown) => app.log.error({ err: error }, 'could not send grant ends to bastions'));
    };
    /** Ends held back for their host (see hostFirst), each with its timer. */
    const delayed = new Map<NodeJS.Timeout, GrantEndedForBastion & { node: string }>();
    const unsubscribe = opts.lookup.onGrantEnded((ended) => {
      // No stream of that node here: nothing to read. A companion connecting later catches up with ended?since=.
      const nodes = nodesOf(ended).filter((node) => [...streams].some((stream) => stream.bastionId === node));
      if (nodes.length === 0) return;
      const hostFirst = ended.resourceId !== undefined && opts.hostFirst?.resources.has(ended.resourceId);
      const now = nodes.filter((node) => !hostFirst || node !== ended.bastionId);
      if (now.length) enqueue(now.map((node) => ({ ...ended, node })));
      if (hostFirst && nodes.includes(ended.bastionId)) {
        const entry = { ...ended, node: ended.bastionId };
        const timer = setTimeout(() => { delayed.delete(timer); enqueue([entry]); }, opts.hostFirst?.ms ?? 500);
        delayed.set(timer, entry);
      }
    }, () => streams.size > 0);

    // Rows are pruned periodically rather than by a timer per ended grant: any instance may have recorded a grant's
    // pids, a restart would lose per-grant timers (leaving rows forever), and one delete covers every grant at once.
    // Every instance prunes; the delete is idempotent.
    let pruning: Promise<unknown> = Promise.resolve();
    const pruneTimer = setInterval(() => {
      pruning = opts.sessions.prune(retentionMs).catch((error: unknown) => app.log.warn({ err: error }, 'could not prune bastion sessions'));
    }, opts.sessionPruneEveryMs ?? Math.min(retentionMs, 600_000));
    pruneTimer.unref();

    // SSE responses are hijacked long-lived sockets: end them before the server waits for connections to drain.
    app.addHook('preClose', async () => {
      closing = true;
      unsubscribe();
      // Ends held back for their host go to their bastions now: the streams are closing.
      for (const timer of delayed.keys()) clearTimeout(timer);
      if (delayed.size) enqueue([...delayed.values()]);
      delayed.clear();
      await sent; // ends already committed still reach the streams before they close
      for (const stream of streams) stream.end();
    });
    app.addHook('onClose', async () => {
      clearInterval(pruneTimer);
      await pruning;
    });
  };

  /**
   * `bastion.session.opened` in the audit log. False when the row could not be written: the session is then not
   * allowed (no SSH use the audit log does not know of), and its pid is forgotten so that a later report of the
   * same connection (sshd runs the key command twice) is new again and tries the audit once more.
   */
  const auditOpened = async (request: FastifyRequest, node: Caller, session: { grantId: string; pid: number; owner?: string; user?: string; from?: string; key?: string; via: 'key-lookup' | 'report' }): Promise<boolean> => {
    const { grantId, pid, owner, user, from, key, via } = session;
    if (!opts.lookup.auditReported) return true;
    try {
      await opts.lookup.auditReported([{
        actor: actorOf(node), action: sessionAction(node, 'opened'), grantId, ...(owner ? { subject: owner } : {}),
        ...(node.host ? { resourceId: node.host.resourceId } : {}),
        detail: { ...whereOf(node), pid, via, ...(user ? { [node.host ? 'login' : 'user']: user } : {}), ...(from ? { from } : {}), ...(key ? { keyFingerprint: sshFingerprint(key) } : {}) },
      }]);
      return true;
    } catch (error) {
      request.log.error({ err: error, grantId }, 'could not audit the ssh session: it is refused');
      await opts.sessions.forget(node.id, grantId, [pid]).catch(() => undefined);
      return false;
    }
  };

  /**
   * The active grant this node serves for this key and login, and the key line sshd gets; undefined when none. On an
   * SSH target host, a login the grant's level does not name is refused here, whatever sshd itself would let in.
   */
  const activeFor = async (request: FastifyRequest, node: Caller, key: string, user: string | undefined): Promise<{ grant: Pick<BastionGrant, 'grantId' | 'owner' | 'endsAt'>; line: string | undefined } | undefined> => {
    if (node.host) {
      const grant = await opts.lookup.findActiveHostGrant?.(node.host.resourceId, 'ssh-ed25519', key);
      if (!grant) return undefined;
      if (!user || !(node.host.logins[grant.level] ?? []).includes(user)) {
        request.log.info({ grantId: grant.grantId, hostId: node.host.resourceId, login: user }, 'a login the grant\'s level does not name: refused');
        return undefined;
      }
      return { grant, line: hostAuthorizedKeyLine(grant, key) };
    }
    const grant = await opts.lookup.findActiveGrantByKey(node.id, 'ssh-ed25519', key);
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
      fresh = await opts.sessions.record(node.id, grantId, session.pid);
    } catch (error) {
      request.log.error({ err: error, grantId }, 'could not record the ssh session: the grant\'s end will not close this connection');
    }
    try {
      const still = await activeFor(request, node, session.key, session.user);
      if (still?.grant.grantId !== grantId) {
        // Refused: no session comes of it. A row this call wrote would otherwise wait for an end report forever.
        if (fresh) await opts.sessions.forget(node.id, grantId, [session.pid]).catch(() => undefined);
        return false;
      }
    } catch (error) {
      request.log.error({ err: error, grantId }, 'could not re-check the grant after recording its session');
    }
    if (!fresh) return true;
    return auditOpened(request, node, { grantId, pid: session.pid, owner: grant.owner, user: session.user, from: session.from, key: session.key, via: 'key-lookup' });
  };

  const tags = ['bastion'];
  const unavailable = { description: 'Storage is unavailable; try again', type: 'application/json', schema: BastionError };
  const routes: Route[] = [
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
          fresh = await opts.sessions.record(node.id, grantId, pid);
          if (fresh) owner = (await opts.lookup.grantById?.(grantId))?.owner;
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not record a bastion session');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the session could not be recorded; try again' });
        }
        if (fresh && !(await auditOpened(request, node, { grantId, pid, owner, user, from, via: 'report' }))) {
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
          grant = await opts.lookup.grantById?.(grantId);
          recorded = new Set((await opts.sessions.pidsFor(node.id, [grantId])).get(grantId) ?? []);
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not read a grant\'s sessions for their end');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the sessions could not be read; try again' });
        }
        if (opts.lookup.grantById && !grant) return reply.code(404).send({ code: 'grant_not_found', message: 'no such grant' });
        const rekeyed = parsed.data.cause === 'rekeyed';
        if (grant && !grant.endedAt && !rekeyed) return reply.code(409).send({ code: 'grant_active', message: 'the grant has not ended' });
        // Only sessions this bastion recorded for this grant: a report cannot write rows about anything else, and a
        // session whose end is already on record (a companion restarting catches up on recent ends) is not recorded twice.
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
            if (!recorded.has(pid)) continue;
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
          if (rows.length > 0) await opts.lookup.auditReported?.(rows);
          await opts.sessions.forget(node.id, grantId, ended);
        } catch (error) {
          request.log.error({ err: error, grantId }, 'could not audit the end of a grant\'s sessions');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'the sessions\' end could not be recorded; try again' });
        }
        return { audited: ended.length, ignored: [...killed, ...closed].filter((pid) => !recorded.has(pid)) };
      },
    },
    {
      method: 'GET', url: '/v1/bastion/ended', access: 'bastion',
      doc: {
        operationId: 'listEndedGrantsForBastion', summary: 'Grant ends behind this bastion since an instant, with their processes (catch-up)', tags, query: EndedQuery,
        response: z.object({ events: z.array(BastionEnded) }),
        answers: { 400: { description: 'since is not an ISO instant', type: 'application/json', schema: BastionError }, 503: unavailable },
      },
      handler: async (request, reply) => {
        const node = callerOf(request);
        const parsed = EndedQuery.safeParse(request.query);
        if (!parsed.success) return reply.code(400).send({ code: 'invalid_query', message: 'since must be an ISO instant' });
        try {
          const since = Date.parse(parsed.data.since);
          const ended = node.host
            ? await opts.lookup.endedOnHostSince?.(node.host.resourceId, since) ?? []
            : await opts.lookup.endedSince(node.id, since);
          return { events: await toEvents(node.id, ended) };
        } catch (error) {
          request.log.error({ err: error }, 'could not list ended grants for a bastion');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'ended grants could not be read; try again' });
        }
      },
    },
    {
      method: 'GET', url: '/v1/bastion/live', access: 'bastion',
      doc: {
        operationId: 'listLiveGrantsForBastion',
        summary: 'The grants not ended yet with sessions recorded on this bastion, with their current deadlines and processes: the companion ends them itself at a deadline when no server answers',
        tags, response: BastionLive, answers: { 503: unavailable },
      },
      handler: async (request, reply) => {
        reply.header('cache-control', 'no-store');
        try {
          const node = callerOf(request);
          const live = await opts.sessions.live(node.id);
          // The same order as the server's own ends (hostFirst): a host's companion ends the session's process tree
          // while its sshd still serves it, the bastion's cut comes after.
          const afterMs = (resourceId: string) => (!node.host && opts.hostFirst?.resources.has(resourceId) ? { afterMs: opts.hostFirst.ms ?? 500 } : {});
          return { grants: live.map((g) => ({ grantId: g.grantId, endsAt: new Date(g.endsAt).toISOString(), pids: g.pids, ...afterMs(g.resourceId) })) };
        } catch (error) {
          request.log.error({ err: error }, 'could not list the live grants of a bastion');
          return reply.code(503).send({ code: 'storage_unavailable', message: 'live grants could not be read; try again' });
        }
      },
    },
    {
      method: 'GET', url: '/v1/bastion/events', access: 'bastion',
      doc: {
        operationId: 'streamBastionEvents', summary: 'The same grant ends, live, as Server-Sent Events (`event: ended`)', tags,
        response: { description: 'An event stream; each `data:` line is one ended grant', type: 'text/event-stream', schema: BastionEnded },
      },
      handler: (request, reply) => {
        const bastionId = callerOf(request).id;
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        raw.write('retry: 2000\n: connected\n\n');
        // The server is closing (this request was still being authenticated when the open streams were ended): a
        // stream kept now would never be ended and the server's close would wait for it forever. The companion
        // reconnects, to this server once it is back or to another instance.
        if (closing) {
          raw.end();
          return;
        }
        const heartbeat = setInterval(() => raw.write(': ping\n\n'), opts.heartbeatMs ?? 15_000);
        const stream = {
          bastionId,
          send: (event: BastionEndedEvent) => raw.write(`event: ended\nid: ${event.at}\ndata: ${JSON.stringify(event)}\n\n`),
          end: () => {
            cleanup();
            raw.end();
          },
        };
        const cleanup = () => {
          clearInterval(heartbeat);
          streams.delete(stream);
        };
        streams.add(stream);
        request.raw.on('close', cleanup);
      },
    },
  ];
  return { routes, start };
}

/** The bastion routes as a plugin (tests, benches): served through the router with the bastions' token check. */
export function bastionRoutes(opts: BastionRoutesOptions): FastifyPluginAsync {
  return async (app) => {
    const hosts = new Set(Object.values(opts.bastions).flatMap((node) => (node.host ? [node.host.resourceId] : [])));
    const set = declareBastionRoutes({ hostFirst: { resources: hosts }, ...opts });
    set.start(app);
    serveRoutes(app, set.routes, { bastion: bastionTokenGuard(opts.bastions) });
  };
}
