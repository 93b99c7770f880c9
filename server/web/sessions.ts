// Browser sign-ins and sessions of the approve page, kept in the server's database so any instance can serve the next
// call. A browser holds random values in httpOnly cookies; the database keeps only their SHA-256: the sign-in cookie's
// value is the PKCE code verifier itself (so the verifier is never stored), the session cookie's value is the session
// id. The CSRF token is derived from the session id (csrfTokenFor), so a page can send it back and nothing more is kept.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthUser } from '../identity/user';
import type { Db } from '../storage/db';

const hash = (value: string) => createHash('sha256').update(value).digest('hex');

/** A new random secret for a cookie: 32 bytes, base64url (43 characters, also a valid PKCE code verifier). */
export const randomSecret = (): string => randomBytes(32).toString('base64url');

/** The token a page sends back in `x-stint-csrf` with every POST: only a page that read it from the session has it. */
export function csrfTokenFor(sessionId: string): string {
  return createHash('sha256').update(`stint-approve-csrf\n${sessionId}`).digest('base64url');
}

export function csrfMatches(sessionId: string, sent: string | undefined): boolean {
  if (!sent) return false;
  const want = Buffer.from(csrfTokenFor(sessionId));
  const got = Buffer.from(sent);
  return want.length === got.length && timingSafeEqual(want, got);
}

export interface PendingLogin { state: string; returnTo: string }

export class WebSessions {
  constructor(private readonly db: Db, private readonly now: () => number) {}

  /** A sign-in under way: `verifier` goes in the browser's cookie; its hash finds the state and the way back. */
  async startLogin(verifier: string, login: PendingLogin, ttlMs: number): Promise<void> {
    const now = this.now();
    await this.db.deleteFrom('web_logins').where('expires_at', '<=', now).execute();
    await this.db.insertInto('web_logins').values({ id_hash: hash(verifier), state: login.state, return_to: login.returnTo, expires_at: now + ttlMs }).execute();
  }

  /** Takes the sign-in once: a second callback with the same cookie finds nothing. */
  async takeLogin(verifier: string): Promise<PendingLogin | undefined> {
    const row = await this.db.deleteFrom('web_logins').where('id_hash', '=', hash(verifier)).returningAll().executeTakeFirst();
    if (!row || Number(row.expires_at) <= this.now()) return undefined;
    return { state: row.state, returnTo: row.return_to };
  }

  /** A new session for `user`; returns the id for the cookie. */
  async create(user: AuthUser, ttlMs: number): Promise<string> {
    const id = randomSecret();
    const now = this.now();
    await this.db.deleteFrom('web_sessions').where('expires_at', '<=', now).execute();
    await this.db.insertInto('web_sessions').values({
      id_hash: hash(id), sub: user.sub, name: user.name ?? null, email: user.email ?? null, groups: JSON.stringify(user.groups),
      admin: user.admin ? 1 : 0, auth_time: user.authTime ?? null, created_at: now, expires_at: now + ttlMs,
    }).execute();
    return id;
  }

  async user(id: string): Promise<AuthUser | undefined> {
    const row = await this.db.selectFrom('web_sessions').selectAll().where('id_hash', '=', hash(id)).executeTakeFirst();
    if (!row || Number(row.expires_at) <= this.now()) return undefined;
    return {
      sub: row.sub, groups: JSON.parse(row.groups) as string[], admin: row.admin === 1,
      ...(row.name ? { name: row.name } : {}), ...(row.email ? { email: row.email } : {}),
      ...(row.auth_time !== null ? { authTime: Number(row.auth_time) } : {}),
      tokenExpiresAt: Number(row.expires_at),
    };
  }

  async end(id: string): Promise<void> {
    await this.db.deleteFrom('web_sessions').where('id_hash', '=', hash(id)).execute();
  }
}
