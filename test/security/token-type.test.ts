// LOW (review of the first wave): access tokens were taken without looking at `typ` or `azp`, so an ID token, or a
// token the same IdP issued to another client for this audience, could pass for one of the agent's. A JWT whose type
// says it is not an access token is refused, and with identity.clientIds set, so is one issued to another client.
import { describe, expect, it } from 'vitest';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import { createTokenVerifier } from '../../server/identity/verify';
import { systemClock } from '../../shared/domain/clock';

const issuer = 'https://login.example.com';
const audience = 'https://stint.example.com/api';

async function verify(header: Record<string, unknown>, claims: Record<string, unknown>, clientIds?: string[]) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1', ...header }).setIssuer(issuer).setAudience(audience)
    .setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const verifier = createTokenVerifier({
    identity: { issuer, audience, groupsClaim: 'groups', adminGroups: [], requireAtJwt: false, dev: false, ...(clientIds ? { clientIds } : {}) },
    clock: systemClock,
    jwks: createLocalJWKSet({ keys: [jwk] }),
  });
  return verifier.verify(`Bearer ${token}`);
}

describe('access token type and client', () => {
  it('takes RFC 9068 access tokens and plain JWTs, refuses other types', async () => {
    expect(await verify({ typ: 'at+jwt' }, {})).toMatchObject({ ok: true });
    expect(await verify({ typ: 'application/at+jwt' }, {})).toMatchObject({ ok: true });
    expect(await verify({ typ: 'JWT' }, {})).toMatchObject({ ok: true });
    expect(await verify({}, {})).toMatchObject({ ok: true });
    expect(await verify({ typ: 'logout+jwt' }, {})).toEqual({ ok: false, code: 'token_invalid', message: 'the token\'s type is "logout+jwt", not an access token' });
  });

  it('with identity.clientIds, a token issued to another client is refused; without azp, or without the setting, it passes', async () => {
    expect(await verify({}, { azp: 'stint-agent' }, ['stint-agent'])).toMatchObject({ ok: true });
    expect(await verify({}, { azp: 'reporting-dashboard' }, ['stint-agent'])).toEqual({ ok: false, code: 'token_invalid', message: 'the token was issued to client "reporting-dashboard", which this server does not accept (identity.clientIds)' });
    expect(await verify({}, {}, ['stint-agent'])).toMatchObject({ ok: true });
    expect(await verify({}, { azp: 'reporting-dashboard' })).toMatchObject({ ok: true });
  });
});
