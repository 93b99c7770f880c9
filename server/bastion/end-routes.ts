// The ends of grants, for the nodes that act on them (each node's companion): GET /v1/bastion/ended?since= (catch-up),
// GET /v1/bastion/events (the same ends, live, as server-sent events) and GET /v1/bastion/live (the grants not ended
// yet with sessions on the node, their deadlines and pids: the companion ends them itself at a deadline when no server
// answers then, issue #21). `start` subscribes to the lifecycle's grant ends and fans them out to the open streams.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Route } from '../http/router';
import { callerOf, hostNodeId } from './nodes';
import { BastionError, tags, unavailable } from './route-schemas';
import type { BastionGrantLookup, GrantEndedForBastion } from './seam';
import type { BastionSessionStore } from './sessions';

export interface EndRoutesOptions {
  lookup: BastionGrantLookup;
  sessions: BastionSessionStore;
  /** SSE keep-alive comment interval; the companion reconnects when it hears nothing for 3 intervals. Default 15 s. */
  heartbeatMs?: number;
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

const EndedQuery = z.object({ since: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO instant') });
const BastionEnded = z.object({ grantId: z.string(), keyBase64: z.string(), at: z.string(), pids: z.array(z.number().int()), cause: z.literal('rekeyed').optional() });
const BastionLive = z.object({
  grants: z.array(z.object({
    grantId: z.string(),
    endsAt: z.string().describe("the grant's current deadline (an extension moves it)"),
    pids: z.array(z.number().int()).describe('the sshd processes recorded for the grant on this bastion'),
    afterMs: z.number().int().optional().describe("how long after the deadline this node acts: a bastion waits for an SSH target host's own companion"),
  })),
});

/**
 * The end routes and the fan-out their event streams need, started on the app by `start`. Nothing of `opts` is
 * touched until `start` or a handler runs.
 */
export function declareEndRoutes(opts: EndRoutesOptions): { routes: Route[]; start: (app: FastifyInstance) => void } {
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
  };

  const routes: Route[] = [
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
