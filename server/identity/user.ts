import 'fastify';
// Who is calling, as established by the bearer token (server/identity verifies it against the IdP's JWKS).
// Route plugins registered inside the authenticated scope read it from `request.user`.
export interface AuthUser {
  sub: string;
  email?: string;
  name?: string;
  groups: string[];
  admin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser;
  }
}
