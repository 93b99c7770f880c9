// The approve page's two cookies: the sign-in under way (path /approve/auth, minutes) and the session (path /, the
// session's length). Both httpOnly and SameSite=Lax (the IdP's redirect back is a top-level GET, which Lax lets
// through; a cross-site POST carries neither), Secure with the __Host-/__Secure- prefixes when the server is https.
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface CookieNames { session: string; login: string; secure: boolean }

export function cookieNames(serverUrl: string): CookieNames {
  const secure = new URL(serverUrl).protocol === 'https:';
  return secure
    ? { session: '__Host-stint_approve_session', login: '__Secure-stint_approve_login', secure }
    : { session: 'stint_approve_session', login: 'stint_approve_login', secure };
}

export const LOGIN_COOKIE_PATH = '/approve/auth';

/** One cookie's value from the request's Cookie header. */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Append a Set-Cookie; `maxAgeSeconds: 0` clears it. Values are base64url, so nothing needs encoding. */
export function setCookie(reply: FastifyReply, names: CookieNames, name: string, value: string, options: { path: string; maxAgeSeconds: number }): void {
  const parts = [`${name}=${value}`, `Path=${options.path}`, `Max-Age=${options.maxAgeSeconds}`, 'HttpOnly', 'SameSite=Lax', ...(names.secure ? ['Secure'] : [])];
  const existing = reply.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing.map(String) : [String(existing)];
  void reply.header('set-cookie', [...list, parts.join('; ')]);
}
