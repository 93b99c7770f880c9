// Bearer access tokens: JWTs verified against the IdP's JWKS (found through OpenID discovery), with issuer,
// audience and expiry checked against the server clock. Groups come from the configured claim (claim-path.ts:
// `realm_access.roles` and namespaced names such as `https://example.com/groups` work). Verified tokens are cached until their expiry to spare a signature check
// per call; the cache key is the whole token, so a forged token never hits it.
// Service identities (identity/services.ts): a token of the IdP that matches a configured service is that service's;
// a token from a workload issuer (a CI provider) is verified against that issuer's keys and must match a service.
// A token that is not shaped like a JWT (three dot-separated parts) is opaque: the IdP is asked about it by RFC 7662
// introspection when identity.introspection is configured (introspect.ts), and its answer is cached the same way.
import { createRemoteJWKSet, decodeJwt, jwtVerify, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../../shared/domain/clock';
import type { AuthUser } from './user';
import { readClaim } from './claim-path';
import { matchService, serviceUser, workloadIssuers, type Identity } from './services';
import { createIntrospector } from './introspect';
import { requireSecret } from '../config-base';

export type VerifyOutcome =
  | { ok: true; user: AuthUser; expiresAt: number }
  | { ok: false; code: 'token_missing' | 'token_invalid' | 'token_expired' | 'token_wrong_audience' | 'token_wrong_issuer' | 'idp_unavailable'; message: string };

export interface TokenVerifier {
  verify(authorization: string | undefined): Promise<VerifyOutcome>;
}

export interface VerifierOptions {
  identity: Identity;
  clock: Clock;
  /** Tests and embedded setups may hand over the key set directly instead of discovering it. */
  jwks?: JWTVerifyGetKey;
  fetch?: typeof fetch;
  /** Environment for identity.introspection.clientSecret (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const CACHE_MAX = 10_000;

export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const { identity, clock } = options;
  const doFetch = options.fetch ?? fetch;
  const keySets = new Map<string, Promise<JWTVerifyGetKey>>(options.jwks ? [[identity.issuer, Promise.resolve(options.jwks)]] : []);
  const workload = workloadIssuers(identity);
  const cache = new Map<string, { user: AuthUser; exp: number }>();

  const documents = new Map<string, Promise<{ jwks_uri?: string; introspection_endpoint?: string }>>();
  const discovery = (issuer: string) => {
    // A failed fetch is forgotten so the next call tries again (the IdP may come up after us).
    let document = documents.get(issuer);
    if (!document) {
      document = (async () => {
        const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
        const response = await doFetch(url, { signal: AbortSignal.timeout(5_000) });
        if (!response.ok) throw new Error(`discovery answered ${response.status}`);
        return (await response.json()) as { jwks_uri?: string; introspection_endpoint?: string };
      })().catch((error: unknown) => { documents.delete(issuer); throw error; });
      documents.set(issuer, document);
    }
    return document;
  };
  const discover = async (issuer: string): Promise<JWTVerifyGetKey> => {
    const meta = await discovery(issuer);
    if (!meta.jwks_uri) throw new Error('discovery document has no jwks_uri');
    return createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
  };
  const getKeySet = (issuer: string): Promise<JWTVerifyGetKey> => {
    // A failed discovery is forgotten so the next call tries again (the IdP may come up after us).
    let keySet = keySets.get(issuer);
    if (!keySet) {
      keySet = discover(issuer).catch((error) => { keySets.delete(issuer); throw error; });
      keySets.set(issuer, keySet);
    }
    return keySet;
  };

  const introspect = identity.introspection && createIntrospector({
    identity, fetch: doFetch, now: () => clock.now(),
    clientSecret: requireSecret(identity.introspection.clientSecret, 'identity.introspection.clientSecret', options.env),
    discoveredEndpoint: async () => (await discovery(identity.issuer)).introspection_endpoint,
  });

  const toUser = (payload: JWTPayload): AuthUser | undefined => {
    if (typeof payload.sub !== 'string' || !payload.sub) return undefined;
    const service = matchService(identity, identity.issuer, payload);
    if (service) return serviceUser(service);
    // A person's subject never looks like a service's: policies and grants could not tell them apart.
    if (payload.sub.startsWith('service:')) return undefined;
    const groupsValue = readClaim(payload, identity.groupsClaim);
    const groups = Array.isArray(groupsValue) ? groupsValue.filter((g): g is string => typeof g === 'string') : typeof groupsValue === 'string' ? [groupsValue] : [];
    return {
      sub: payload.sub,
      email: typeof payload.email === 'string' ? payload.email : undefined,
      name: typeof payload.name === 'string' ? payload.name : undefined,
      groups,
      admin: groups.some((g) => identity.adminGroups.includes(g)),
      ...(typeof payload.auth_time === 'number' ? { authTime: payload.auth_time * 1000 } : {}),
    };
  };

  return {
    async verify(authorization) {
      if (!authorization) return { ok: false, code: 'token_missing', message: 'a bearer access token is required' };
      const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization.trim());
      if (!match) return { ok: false, code: 'token_invalid', message: 'the Authorization header must be "Bearer <token>"' };
      const token = match[1]!;
      const nowMs = clock.now();
      const cached = cache.get(token);
      if (cached) {
        if (cached.exp > nowMs) return { ok: true, user: cached.user, expiresAt: cached.exp };
        cache.delete(token);
        return { ok: false, code: 'token_expired', message: 'the access token has expired' };
      }
      if (token.split('.').length !== 3) return remember(token, await verifyOpaque(token));
      // Which issuer's keys to check it with: the token names it (unverified until the signature checks out).
      let claimed: unknown;
      try { claimed = decodeJwt(token).iss; } catch { claimed = undefined; }
      const workloadAudiences = typeof claimed === 'string' && claimed !== identity.issuer ? workload.get(claimed) : undefined;
      const issuer = workloadAudiences ? (claimed as string) : identity.issuer;
      let jwks: JWTVerifyGetKey;
      try {
        jwks = await getKeySet(issuer);
      } catch (error) {
        return { ok: false, code: 'idp_unavailable', message: `cannot fetch the identity provider's keys (${issuer}): ${(error as Error).message}` };
      }
      if (workloadAudiences) return remember(token, await verifyWorkload(token, jwks, issuer, workloadAudiences));
      try {
        const { payload, protectedHeader } = await jwtVerify(token, jwks, {
          issuer: identity.issuer,
          audience: identity.audience,
          currentDate: new Date(clock.now()),
          requiredClaims: ['exp', 'sub'],
          ...(identity.requireAtJwt ? { typ: 'at+jwt' } : {}),
        });
        // An ID token is not an access token: a `typ` that says so (or anything but a JWT access token) is refused,
        // and a token issued to a client this server does not serve (azp) is not taken for one of ours.
        const typ = typeof protectedHeader.typ === 'string' ? protectedHeader.typ.toLowerCase().replace(/^application\//, '') : undefined;
        if (typ !== undefined && typ !== 'at+jwt' && typ !== 'jwt') return { ok: false, code: 'token_invalid', message: `the token's type is "${protectedHeader.typ}", not an access token` };
        const user = toUser(payload);
        // identity.clientIds names the agents people sign in with; a configured service is its own client.
        if (!user?.service && identity.clientIds && typeof payload.azp === 'string' && !identity.clientIds.includes(payload.azp)) {
          return { ok: false, code: 'token_invalid', message: `the token was issued to client "${payload.azp}", which this server does not accept (identity.clientIds)` };
        }
        if (!user) return { ok: false, code: 'token_invalid', message: 'the token has no subject, or one this server does not accept' };
        return remember(token, { ok: true, user, expiresAt: payload.exp! * 1000 });
      } catch (error) {
        return failure(error);
      }
    },
  };

  function remember(token: string, outcome: VerifyOutcome): VerifyOutcome {
    if (!outcome.ok) return outcome;
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(token, { user: outcome.user, exp: outcome.expiresAt });
    return outcome;
  }

  /** An opaque access token: what the IdP says of it by introspection, held to the same rules as a JWT's claims. */
  async function verifyOpaque(token: string): Promise<VerifyOutcome> {
    if (!introspect) {
      return { ok: false, code: 'token_invalid', message: `the access token is opaque (not a JWT), and this server checks opaque tokens only by introspection: configure identity.introspection (clientId and clientSecret of a client the identity provider lets introspect tokens), or have the identity provider issue JWT access tokens for the audience "${identity.audience}"` };
    }
    const answer = await introspect(token);
    if (!answer.ok) return answer;
    const user = toUser(answer.claims);
    const client = answer.claims.client_id;
    if (!user?.service && identity.clientIds && typeof client === 'string' && !identity.clientIds.includes(client)) {
      return { ok: false, code: 'token_invalid', message: `the token was issued to client "${client}", which this server does not accept (identity.clientIds)` };
    }
    if (!user) return { ok: false, code: 'token_invalid', message: 'the token has no subject, or one this server does not accept' };
    return { ok: true, user, expiresAt: answer.claims.exp! * 1000 };
  }

  /** A CI provider's workload identity token: its issuer's keys, one of its services' audiences, and a service match. */
  async function verifyWorkload(token: string, jwks: JWTVerifyGetKey, issuer: string, audiences: string[]): Promise<VerifyOutcome> {
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience: audiences, currentDate: new Date(clock.now()), requiredClaims: ['exp', 'sub'] });
      const service = matchService(identity, issuer, payload);
      if (!service) return { ok: false, code: 'token_invalid', message: `the token from ${issuer} matches no service in identity.services (subject, audience and claims)` };
      return { ok: true, user: serviceUser(service), expiresAt: payload.exp! * 1000 };
    } catch (error) {
      return failure(error);
    }
  }

  function failure(error: unknown): VerifyOutcome {
    if (error instanceof joseErrors.JWTExpired) return { ok: false, code: 'token_expired', message: 'the access token has expired' };
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      // Both values are public (the token's own claims and this server's config) and are what an admin needs to
      // fix a mismatch between the IdP and the agent's settings.
      const got = (claim: unknown) => (claim === undefined ? 'none' : JSON.stringify(claim));
      if (error.claim === 'aud') return { ok: false, code: 'token_wrong_audience', message: `the access token is for another audience: this server expects "${identity.audience}", the token has ${got(error.payload.aud)}` };
      if (error.claim === 'iss') return { ok: false, code: 'token_wrong_issuer', message: `the access token is from another issuer: this server expects "${identity.issuer}", the token has ${got(error.payload.iss)}` };
      return { ok: false, code: 'token_invalid', message: `the access token's ${error.claim} claim is not acceptable` };
    }
    if (error instanceof joseErrors.JOSEError && error.code === 'ERR_JWKS_TIMEOUT') {
      return { ok: false, code: 'idp_unavailable', message: "the identity provider's keys could not be fetched in time" };
    }
    return { ok: false, code: 'token_invalid', message: 'the access token is not valid (signature, format or key)' };
  }
}
