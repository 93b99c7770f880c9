// A stand-in for the grant server, speaking the HTTP contract, for agent tests: it activates grants for real
// (a PostgreSQL role with a password, the grant's key in the bastion's authorized_keys) so tunnels and psql work,
// and it can push events, approve requests, and die.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AccessRequest, Grant, Resource } from '../../shared/contract/http';
import type { ServerEvent } from '../../shared/contract/events';
import type { PostgresInstance } from '../../dev/postgres';
import type { SshdInstance } from '../../dev/sshd';
import { freePort } from '../../dev/ports';
import { resource } from './builders';

export interface FakeGrantServer {
  url: string;
  resources: Resource[];
  requests: Map<string, AccessRequest>;
  grants: Map<string, Grant>;
  approve(requestId: string): void;
  push(event: ServerEvent): void;
  calls: string[];
  authorizations: string[];
  /** Stop answering (and drop the event streams): the server is gone. */
  kill(): Promise<void>;
}

export async function startFakeGrantServer(db: PostgresInstance, sshd: SshdInstance): Promise<FakeGrantServer> {
  const resources = [
    resource('prod-orders', 'production', { autoApprove: true }),
    resource('prod-billing', 'production', { autoApprove: false, approvals: [{ group: 'dba', count: 1 }] }),
  ];
  const requests = new Map<string, AccessRequest>();
  const grants = new Map<string, Grant>();
  const streams = new Set<ServerResponse>();
  const calls: string[] = [];
  const authorizations: string[] = [];
  const keys: string[] = [];
  let eventId = 0;
  const now = () => new Date().toISOString();

  const push = (event: ServerEvent) => {
    eventId++;
    const frame = `id: ${eventId}\nevent: ${event.type}\ndata: ${JSON.stringify({ id: String(eventId), at: now(), event })}\n\n`;
    for (const res of streams) res.write(frame);
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', date: new Date().toUTCString() });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: any) => {
    const url = new URL(req.url!, 'http://x');
    calls.push(`${req.method} ${url.pathname}`);
    authorizations.push(req.headers.authorization ?? '');
    const parts = url.pathname.split('/').filter(Boolean);
    if (req.method === 'GET' && url.pathname === '/v1/me') return send(res, 200, { sub: 'alice', email: 'alice@example.com', groups: ['engineers'], admin: false, approver: false, serverTime: now() });
    if (req.method === 'GET' && url.pathname === '/v1/resources') return send(res, 200, { resources });
    if (req.method === 'GET' && url.pathname === '/v1/requests') return send(res, 200, { requests: url.searchParams.get('role') === 'approver' ? [] : [...requests.values()] });
    if (req.method === 'GET' && url.pathname === '/v1/grants') return send(res, 200, { grants: [...grants.values()] });
    if (req.method === 'GET' && url.pathname === '/v1/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': connected\n\n');
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/requests') {
      const r = resources.find((x) => x.id === body.resourceId)!;
      const request: AccessRequest = {
        id: `r-${randomUUID().slice(0, 8)}`, requester: 'alice', resourceId: r.id, level: body.level, durationSeconds: body.durationSeconds ?? 3600,
        reason: body.reason, breakGlass: false, state: r.policy.autoApprove ? 'approved' : 'pending_approval', policyVersion: 1,
        risk: { score: 0, reasons: [] }, approvals: [], approvalsNeeded: r.policy.approvals.map((a) => ({ ...a, have: 0 })),
        stepUpRequired: false, stepUpMethods: [], createdAt: now(), expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      };
      requests.set(request.id, request);
      return send(res, 201, { request });
    }
    if (req.method === 'POST' && parts[1] === 'requests' && parts[3] === 'activate') {
      const request = requests.get(parts[2]!)!;
      const grantId = `g-${randomUUID().slice(0, 8)}`;
      const dbUser = `stint_${grantId.replace(/-/g, '_')}`;
      const dbPassword = randomUUID();
      await db.query(`create role ${dbUser} login password '${dbPassword}'`);
      keys.push(`restrict,port-forwarding,permitopen="127.0.0.1:${db.port}" ${body.publicKey}`);
      sshd.setAuthorizedKeys(keys);
      const start = Date.now();
      const grant: Grant = {
        id: grantId, requestId: request.id, owner: 'alice', resourceId: request.resourceId, level: request.level, state: 'active',
        startsAt: new Date(start).toISOString(), endsAt: new Date(start + request.durationSeconds * 1000).toISOString(),
        extendedSeconds: 0, revocation: 'none', breakGlass: false,
      };
      grants.set(grantId, grant);
      requests.set(request.id, { ...request, grantId });
      return send(res, 201, {
        grant,
        connection: {
          bastion: { host: sshd.host, port: sshd.port, user: sshd.user, hostKeys: [sshd.hostKeyLine] },
          target: { host: '127.0.0.1', port: db.port, database: db.database }, dbUser, dbPassword,
        },
      });
    }
    if (req.method === 'POST' && parts[1] === 'grants' && parts[3] === 'release') {
      const grant = { ...grants.get(parts[2]!)!, state: 'released' as const, endedAt: now() };
      grants.set(grant.id, grant);
      return send(res, 200, { grant });
    }
    if (req.method === 'POST' && parts[1] === 'grants' && parts[3] === 'extend') {
      const old = grants.get(parts[2]!)!;
      const grant = { ...old, endsAt: new Date(Date.parse(old.endsAt) + body.durationSeconds * 1000).toISOString(), extendedSeconds: old.extendedSeconds + body.durationSeconds };
      grants.set(grant.id, grant);
      return send(res, 200, { grant });
    }
    send(res, 404, { type: 'about:blank', title: 'Not found', status: 404, code: 'not_found' });
  };

  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      handle(req, res, text ? JSON.parse(text) : undefined).catch((e) => send(res, 500, { type: 'about:blank', title: String(e), status: 500, code: 'internal' }));
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    resources, requests, grants, calls, authorizations, push,
    approve(requestId) {
      const request = { ...requests.get(requestId)!, state: 'approved' as const };
      requests.set(requestId, request);
      push({ type: 'request.updated', request });
    },
    kill: () => new Promise<void>((r) => {
      for (const s of streams) s.destroy();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
