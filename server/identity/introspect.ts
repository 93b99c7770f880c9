// Opaque (non-JWT) access tokens: RFC 7662 token introspection at the IdP, as the confidential client configured in
// identity.introspection (client_secret_basic). The IdP's answer stands in for a JWT's verified claims: it must be
// active, from identity.issuer (when it names one), for identity.audience, and say when it expires. The token itself
// is sent only to the introspection endpoint and never appears in a message or a log.
import type { JWTPayload } from 'jose';
import type { Identity } from './services';

export type IntrospectOutcome =
  | { ok: true; claims: JWTPayload & { client_id?: unknown } }
  | { ok: false; code: 'token_invalid' | 'token_expired' | 'token_wrong_audience' | 'token_wrong_issuer' | 'idp_unavailable'; message: string };

export interface IntrospectorOptions {
  identity: Identity;
  /** identity.introspection.clientSecret, resolved. */
  clientSecret: string;
  /** The discovery document's introspection_endpoint, when identity.introspection.endpoint is left out. */
  discoveredEndpoint: () => Promise<string | undefined>;
  now: () => number;
  fetch: typeof fetch;
}

export function createIntrospector(options: IntrospectorOptions): (token: string) => Promise<IntrospectOutcome> {
  const { identity } = options;
  const config = identity.introspection!;
  // client_secret_basic (RFC 6749 §2.3.1): id and secret are form-encoded before base64.
  const basic = Buffer.from(`${encodeURIComponent(config.clientId)}:${encodeURIComponent(options.clientSecret)}`).toString('base64');

  return async (token) => {
    let endpoint: string | undefined;
    try {
      endpoint = config.endpoint ?? await options.discoveredEndpoint();
    } catch (error) {
      return { ok: false, code: 'idp_unavailable', message: `cannot read the identity provider's discovery document (${identity.issuer}): ${(error as Error).message}` };
    }
    if (!endpoint) return { ok: false, code: 'idp_unavailable', message: `the identity provider (${identity.issuer}) announces no introspection_endpoint: set identity.introspection.endpoint` };
    let answer: Record<string, unknown>;
    try {
      const response = await options.fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        signal: AbortSignal.timeout(5_000),
      });
      // 401: the IdP refused our client, which is the admin's to fix, not the caller's.
      if (!response.ok) return { ok: false, code: 'idp_unavailable', message: `the identity provider's introspection endpoint answered ${response.status}${response.status === 401 ? ': check identity.introspection.clientId and clientSecret' : ''}` };
      answer = (await response.json()) as Record<string, unknown>;
    } catch (error) {
      return { ok: false, code: 'idp_unavailable', message: `cannot reach the identity provider's introspection endpoint (${endpoint}): ${(error as Error).message}` };
    }
    if (answer.active !== true) return { ok: false, code: 'token_invalid', message: 'the identity provider says this access token is not active (revoked, expired or unknown): sign in again' };
    if (typeof answer.exp !== 'number') return { ok: false, code: 'token_invalid', message: 'the identity provider did not say when this access token expires (introspection has no exp)' };
    if (answer.exp * 1000 <= options.now()) return { ok: false, code: 'token_expired', message: 'the access token has expired' };
    if (answer.iss !== undefined && answer.iss !== identity.issuer) return { ok: false, code: 'token_wrong_issuer', message: `the access token is from another issuer: this server expects "${identity.issuer}", the token has ${JSON.stringify(answer.iss)}` };
    const audiences = Array.isArray(answer.aud) ? answer.aud : answer.aud === undefined ? [] : [answer.aud];
    if (!audiences.includes(identity.audience)) return { ok: false, code: 'token_wrong_audience', message: `the access token is for another audience: this server expects "${identity.audience}", the token has ${audiences.length ? JSON.stringify(answer.aud) : 'none'}` };
    return { ok: true, claims: answer as JWTPayload };
  };
}
