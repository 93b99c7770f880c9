// Shared by the grant server tests: a tiny HTTP client that returns status, headers and parsed body, a token cache
// per demo user (one real IdP login each), and a credential provider that records calls (no database needed).
import { generateKeyPairSync } from 'node:crypto';
import type { CredentialProvider, IssueInput } from '../../server/credentials/provider';
import type { IdpInstance } from '../../dev/idp';

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
  contentType: string;
}

export async function call<T = any>(base: string, method: string, path: string, options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let payload: string | undefined;
  if (options.raw !== undefined) payload = options.raw;
  else if (options.body !== undefined) payload = JSON.stringify(options.body);
  if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, body: payload });
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  let body: unknown = text;
  if (contentType.includes('json') && text) body = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: body as T, contentType };
}

export class Tokens {
  private readonly cache = new Map<string, Promise<string>>();
  constructor(private readonly idp: IdpInstance) {}
  for(user: string): Promise<string> {
    let token = this.cache.get(user);
    if (!token) this.cache.set(user, (token = this.idp.tokenFor(user)));
    return token;
  }
}

/** A client bound to one server and one user. */
export function clientFor(base: string, token: string) {
  return {
    get: <T = any>(path: string, headers?: Record<string, string>) => call<T>(base, 'GET', path, { token, headers }),
    post: <T = any>(path: string, body: unknown = {}, headers?: Record<string, string>) => call<T>(base, 'POST', path, { token, body, headers }),
  };
}

export function ed25519PublicKeyLine(comment = 'test'): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([u32(type.length), type, u32(raw.length), raw]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Records every call; `failIssue` / `failRevoke` make the next calls throw (revoke: that many times). */
export class RecordingProvider implements CredentialProvider {
  readonly kind = 'recording';
  issued: IssueInput[] = [];
  extended: { grantId: string; endsAt: number }[] = [];
  /** Successful revokes, with when each was made (epoch ms). */
  revoked: { grantId: string; username: string; at: number }[] = [];
  revokeAttempts = 0;
  failIssue = false;
  failRevoke = 0;
  /** When set, issuing waits for it (a slow database), so a test can act while credentials are being issued. */
  holdIssue: Promise<void> | undefined;
  /** When set, revoking waits for it (a target database that hangs). */
  holdRevoke: Promise<void> | undefined;
  private n = 0;

  async issue(input: IssueInput) {
    if (this.holdIssue) await this.holdIssue;
    if (this.failIssue) throw Object.assign(new Error('connection refused by postgres://admin:secret@db/orders'), { code: 'unavailable' });
    this.issued.push(input);
    this.n += 1;
    return { username: `stint_g_test${String(this.n).padStart(4, '0')}`, password: `pw-${this.n}-secret` };
  }
  async extend(input: { grantId: string; resourceId: string; username: string; endsAt: number }) {
    this.extended.push({ grantId: input.grantId, endsAt: input.endsAt });
  }
  rotated: { grantId: string; username: string }[] = [];
  async rotate(input: { grantId: string; resourceId: string; username: string }) {
    this.rotated.push({ grantId: input.grantId, username: input.username });
    this.n += 1;
    return { password: `pw-${this.n}-rotated` };
  }
  async revoke(input: { grantId: string; resourceId: string; username: string }) {
    this.revokeAttempts += 1;
    if (this.holdRevoke) await this.holdRevoke;
    if (this.failRevoke > 0) {
      this.failRevoke -= 1;
      throw Object.assign(new Error('database unavailable'), { code: 'unavailable' });
    }
    this.revoked.push({ grantId: input.grantId, username: input.username, at: Date.now() });
  }
  async close() {}
}

export async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A UTC window "HH:MM-HH:MM" (policies' hours and change windows) from `from` to `to` hours away from now; it may wrap midnight. */
export function windowFromNow(from: number, to: number, now = Date.now()): string {
  const at = (h: number) => new Date(now + h * 3600_000).toISOString().slice(11, 16);
  return `${at(from)}-${at(to)}`;
}
