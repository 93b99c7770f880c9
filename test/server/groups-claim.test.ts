// Groups from the claim an IdP really uses: Keycloak nests them (realm_access.roles), Auth0 namespaces them under a
// URL full of dots (https://example.com/groups). The claim path used to be split on every dot, so a namespaced claim
// gave no groups, with no warning, and every policy refused the user.
import { describe, expect, it } from 'vitest';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import { createTokenVerifier } from '../../server/identity/verify';
import { systemClock } from '../../shared/domain/clock';
import { claimPathKeys, readClaim } from '../../server/identity/claim-path';
import { parseConfig } from '../../server/config';
import { readFileSync } from 'node:fs';

const issuer = 'https://login.example.com';
const audience = 'https://stint.example.com/api';

async function verifyWith(groupsClaim: string, claims: Record<string, unknown>) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setAudience(audience)
    .setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const verifier = createTokenVerifier({
    identity: { issuer, audience, groupsClaim, adminGroups: ['admins'], requireAtJwt: false, dev: false },
    clock: systemClock,
    jwks: createLocalJWKSet({ keys: [jwk] }),
  });
  return verifier.verify(`Bearer ${token}`);
}

describe('groups claim paths', () => {
  it('reads a namespaced claim whose name has dots, as written', async () => {
    const out = await verifyWith('https://example.com/groups', { 'https://example.com/groups': ['engineers', 'admins'] });
    expect(out).toMatchObject({ ok: true, user: { groups: ['engineers', 'admins'], admin: true } });
  });

  it('reads nested claims (Keycloak realm roles) and escaped dots inside a name', async () => {
    expect(await verifyWith('realm_access.roles', { realm_access: { roles: ['dba'] } })).toMatchObject({ ok: true, user: { groups: ['dba'] } });
    expect(await verifyWith('ext.corp\\.example\\.com.groups', { ext: { 'corp.example.com': { groups: ['sre-leads'] } } })).toMatchObject({ ok: true, user: { groups: ['sre-leads'] } });
    expect(claimPathKeys('a\\.b.c')).toEqual(['a.b', 'c']);
  });

  it('a wrong audience names what the server expects and what the token has', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setAudience('api://other')
      .setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const verifier = createTokenVerifier({
      identity: { issuer, audience, groupsClaim: 'groups', adminGroups: [], requireAtJwt: false, dev: false },
      clock: systemClock,
      jwks: createLocalJWKSet({ keys: [jwk] }),
    });
    expect(await verifier.verify(`Bearer ${token}`)).toEqual({ ok: false, code: 'token_wrong_audience', message: `the access token is for another audience: this server expects "${audience}", the token has "api://other"` });
  });

  it('does not walk into inherited properties', () => {
    expect(readClaim({}, 'constructor.name')).toBeUndefined();
  });

  it('a claim path with an empty name is refused when the config loads', () => {
    const example = readFileSync('docs/config.example.yaml', 'utf8').replace('groupsClaim: groups', 'groupsClaim: "realm_access..roles"');
    expect(() => parseConfig(example, 'stint.yaml')).toThrow(/identity\.groupsClaim.*empty name between dots/);
  });
});
