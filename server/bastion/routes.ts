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
// They are declared for the router (server/http/router.ts) as 'bastion' routes: the router puts bastionTokenGuard
// (nodes.ts) in front of each, so no handler runs for a caller without a bastion's token. The grant server serves the
// declarations in its one route list; `bastionRoutes` serves them as a plugin (tests, benches) at the root or under
// /v1/bastion. Each concern declares its own: key-routes.ts (the key lookup), session-routes.ts (the sessions nodes
// report), end-routes.ts (ends and deadlines, caught up and live); declareBastionRoutes assembles them.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { serveRoutes, type Route } from '../http/router';
import { declareEndRoutes, type EndRoutesOptions } from './end-routes';
import { declareKeyRoutes } from './key-routes';
import { bastionTokenGuard, type SshNodeCredential } from './nodes';
import { declareSessionRoutes } from './session-routes';

export interface BastionRoutesOptions extends EndRoutesOptions {
  /** Node id → its credential. The token identifies the bastion (or target host: see hostNodeId). */
  bastions: Record<string, SshNodeCredential>;
  /** How long pids of an ended grant are kept for catch-up by `ended?since=`. Default 1 h. */
  sessionRetentionMs?: number;
  /** How often rows past the retention are pruned. Default the retention, at most 10 min. */
  sessionPruneEveryMs?: number;
}

export interface BastionRouteSet {
  routes: Route[];
  /** Start what the handlers share on this app (grant-end subscription, session pruning) and stop it when it closes. */
  start(app: FastifyInstance): void;
}

/**
 * The bastion routes as declarations for the router, in the order the OpenAPI document lists them. Nothing of `opts`
 * is touched until `start` or a handler runs, so the list can also be built just to document it.
 */
export function declareBastionRoutes(opts: Omit<BastionRoutesOptions, 'bastions'>): BastionRouteSet {
  const ends = declareEndRoutes(opts);
  const start = (app: FastifyInstance) => {
    ends.start(app);
    const retentionMs = opts.sessionRetentionMs ?? 3_600_000;
    // Rows are pruned periodically rather than by a timer per ended grant: any instance may have recorded a grant's
    // pids, a restart would lose per-grant timers (leaving rows forever), and one delete covers every grant at once.
    // Every instance prunes; the delete is idempotent.
    let pruning: Promise<unknown> = Promise.resolve();
    const pruneTimer = setInterval(() => {
      pruning = opts.sessions.prune(retentionMs).catch((error: unknown) => app.log.warn({ err: error }, 'could not prune bastion sessions'));
    }, opts.sessionPruneEveryMs ?? Math.min(retentionMs, 600_000));
    pruneTimer.unref();
    app.addHook('onClose', async () => {
      clearInterval(pruneTimer);
      await pruning;
    });
  };
  return { routes: [...declareKeyRoutes(opts), ...declareSessionRoutes(opts), ...ends.routes], start };
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
