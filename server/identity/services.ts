// Service identities: which configured machine client (identity.services) a verified token proves, if any. A token
// is a service's when it comes from the service's issuer, for its audience, with its subject and every claim it
// names — a client credentials token of the IdP (subject: the client id) or a CI provider's workload identity token.
import type { JWTPayload } from 'jose';
import type { ServerConfig, ServiceIdentity } from '../config';
import { readClaim } from './claim-path';
import { serviceSubject, type AuthUser } from './user';

/** The identity config; `services` may be left out by callers that verify people only. */
export type Identity = Omit<ServerConfig['identity'], 'services'> & { services?: ServiceIdentity[] };

const issuerOf = (service: ServiceIdentity, identity: Identity) => service.issuer ?? identity.issuer;
const audienceOf = (service: ServiceIdentity, identity: Identity) => service.audience ?? identity.audience;

/** Issuers other than the IdP's that mint service tokens, each with the audiences its services accept. */
export function workloadIssuers(identity: Identity): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const service of identity.services ?? []) {
    const issuer = issuerOf(service, identity);
    if (issuer === identity.issuer) continue;
    out.set(issuer, [...new Set([...(out.get(issuer) ?? []), audienceOf(service, identity)])]);
  }
  return out;
}

/** The service a token verified as coming from `issuer` proves, or undefined (then it is a person's, or nobody's). */
export function matchService(identity: Identity, issuer: string, payload: JWTPayload): ServiceIdentity | undefined {
  const audiences = Array.isArray(payload.aud) ? payload.aud : payload.aud === undefined ? [] : [payload.aud];
  return (identity.services ?? []).find((service) => issuerOf(service, identity) === issuer
    && audiences.includes(audienceOf(service, identity))
    && payload.sub === service.subject
    && Object.entries(service.claims).every(([path, value]) => readClaim(payload as Record<string, unknown>, path) === value));
}

/** The caller a service is: its own subject, no groups (policies name services by name), never an admin. */
export function serviceUser(service: ServiceIdentity): AuthUser {
  return { sub: serviceSubject(service.name), name: service.name, service: service.name, groups: [], admin: false };
}
