import 'fastify';
// Who is calling, as established by the bearer token (server/identity verifies it against the IdP's JWKS).
// Route plugins registered inside the authenticated scope read it from `request.user`.
export interface AuthUser {
  /** The IdP's subject for a person; `service:<name>` for a service identity (identity.services). */
  sub: string;
  /** Set when the caller is a machine client (CI job, bot): the service's name. It has no groups and no factors. */
  service?: string;
  email?: string;
  name?: string;
  groups: string[];
  admin: boolean;
  /** When the user last signed in at the IdP (the token's auth_time, epoch ms), if the IdP says. */
  authTime?: number;
  /** When the bearer token expires (ms since epoch); long-lived streams end then, and the client reconnects. */
  tokenExpiresAt?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser;
  }
}

/** The subject a service identity acts as in requests, grants and audit. */
export const serviceSubject = (name: string): string => `service:${name}`;
