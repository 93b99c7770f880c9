// The nodes that call the bastion routes, each with its own bearer token: bastions and SSH target hosts (issue #23).
// The router runs bastionTokenGuard before every 'bastion' route; the handlers ask callerOf which node it was.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Guard } from '../http/router';

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

const digest = (value: string) => createHash('sha256').update(value).digest();

/** The node a request came from: its id (a bastion's config id, or hostNodeId) and what it may be answered about. */
export type Caller = { id: string } & Omit<SshNodeCredential, 'token'>;

/** Which node a request came from (set by bastionTokenGuard, which the router runs before every bastion route). */
const callers = new WeakMap<FastifyRequest, Caller>();

export function callerOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  // Unreachable through the router; a handler reached some other way must not serve keys to nobody in particular.
  if (!caller) throw new Error('no bastion token was checked for this request');
  return caller;
}

/** The router's bastion check: the bearer token of one configured bastion, or 401 with an empty body. */
export function bastionTokenGuard(bastions: Record<string, SshNodeCredential>): Guard {
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
