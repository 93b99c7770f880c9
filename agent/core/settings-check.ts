// Checks the sign-in settings (server URL, issuer, client ID, API audience) before they are saved, so a typo is
// caught in Settings — with words that name what failed — instead of at the next sign-in. Only the fields a patch
// changes are checked, and only those touch the network:
// - issuer: its OpenID discovery document is fetched; its `issuer` must equal the configured one exactly and it must
//   name authorization and token endpoints. Plain http only for loopback issuers (as the session allows).
// - server URL: GET <server>/v1/openapi.json (public) must answer with the Stint API description.
// - client ID, audience: not empty.
// - scopes (when they or the issuer change): each one the sign-in service lists in scopes_supported, where it lists
//   them — an IdP that does not know `groups` refuses the whole sign-in.
// - when the server URL, issuer or audience changes: the server's protected-resource metadata (RFC 9728) names the
//   issuer and audience it accepts; the settings as they would be saved must match them.
import type { AgentSettings, SettingsPatch } from '../../shared/contract/agent';
import { AgentError } from './errors';

export type SignInField = 'serverUrl' | 'issuer' | 'clientId' | 'audience' | 'scopes';
export const SIGN_IN_FIELDS: readonly SignInField[] = ['serverUrl', 'issuer', 'clientId', 'audience', 'scopes'];

export interface SettingsCheckOptions {
  fetch?: typeof fetch;
  /** Per request; default 10 s. */
  timeoutMs?: number;
}

/** The sign-in fields the patch sets to a value different from the saved one. */
export function changedSignInFields(before: Partial<Pick<AgentSettings, SignInField>>, patch: SettingsPatch): SignInField[] {
  return SIGN_IN_FIELDS.filter((field) => patch[field] !== undefined && patch[field] !== before[field]);
}

/**
 * Throws AgentError('invalid_input') naming every check that failed; resolves when the changed fields are fine (at
 * once, without any request, when no sign-in field changes).
 */
export async function checkSignInSettings(before: Partial<Pick<AgentSettings, SignInField>>, patch: SettingsPatch, options: SettingsCheckOptions = {}): Promise<void> {
  const changed = changedSignInFields(before, patch);
  if (changed.length === 0) return;
  const checks: Array<Promise<string | undefined>> = [];
  if (patch.serverUrl !== undefined && changed.includes('serverUrl')) checks.push(checkServer(patch.serverUrl, options));
  if (patch.issuer !== undefined && changed.includes('issuer')) checks.push(checkIssuer(patch.issuer, options));
  const issuerAfter = patch.issuer ?? before.issuer;
  if (issuerAfter && (changed.includes('issuer') || changed.includes('scopes'))) checks.push(checkScopes(issuerAfter, patch.scopes ?? before.scopes, options));
  if (changed.includes('clientId') && !patch.clientId?.trim()) checks.push(Promise.resolve('The client ID is empty: enter the one your administrator gave you (usually stint-agent).'));
  if (changed.includes('audience') && !patch.audience?.trim()) checks.push(Promise.resolve('The API audience is empty: enter the one your administrator gave you (the audience your Stint server expects in access tokens).'));
  let failures = (await Promise.all(checks)).filter((f): f is string => Boolean(f));
  if (!failures.length && (changed.includes('serverUrl') || changed.includes('issuer') || changed.includes('audience'))) {
    const after = { ...before, ...patch };
    if (after.serverUrl) failures = [await checkAccepted(after.serverUrl, after.issuer, after.audience, options)].filter((f): f is string => Boolean(f));
  }
  if (failures.length) throw new AgentError('invalid_input', `${failures.join(' ')} Nothing was saved.`);
}

function isLoopback(url: URL): boolean {
  return ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

/** Why a request got no answer, in words ("connection refused", "no answer within 10 s"). */
function whyNoAnswer(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return `no answer within ${Math.round(timeoutMs / 100) / 10} s`;
  const code = e?.cause?.code;
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'no such host';
    case 'ECONNRESET': case 'UND_ERR_SOCKET': return 'the connection was closed';
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'the network cannot reach it';
    case 'ETIMEDOUT': case 'UND_ERR_CONNECT_TIMEOUT': return 'the connection timed out';
    default:
      if (code && /CERT|SSL|TLS/.test(code)) return `its TLS certificate is not trusted: ${code}`;
      return code ?? e?.cause?.message ?? e?.message ?? 'unknown error';
  }
}

/** redirect: 'manual' for discovery, as openid-client fetches it; the API client follows redirects. */
async function get(url: URL, redirect: RequestRedirect, options: SettingsCheckOptions): Promise<{ response: Response } | { error: string }> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    const response = await (options.fetch ?? fetch)(url.href, { headers: { accept: 'application/json' }, redirect, signal: AbortSignal.timeout(timeoutMs) });
    return { response };
  } catch (error) {
    return { error: whyNoAnswer(error, timeoutMs) };
  }
}

const statusText = (r: Response) => `HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ''}`;

async function json(response: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const body: unknown = await response.json();
    return body && typeof body === 'object' && !Array.isArray(body) ? body as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

function httpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

async function checkIssuer(issuer: string, options: SettingsCheckOptions): Promise<string | undefined> {
  const url = httpUrl(issuer);
  if (!url) return `The sign-in service address ${issuer} is not a web address (https://…).`;
  if (url.protocol === 'http:' && !isLoopback(url)) return `The sign-in service address ${issuer} must start with https:// (plain http is allowed only for this computer).`;
  // OpenID Connect Discovery 1.0 §4: the issuer's path + /.well-known/openid-configuration (as openid-client does).
  const discovery = new URL(url.href);
  discovery.search = '';
  discovery.hash = '';
  discovery.pathname = `${discovery.pathname.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const got = await get(discovery, 'manual', options);
  if ('error' in got) return `The sign-in service at ${issuer} could not be reached (${got.error}).`;
  const { response } = got;
  if (!response.ok) {
    await response.body?.cancel();
    return `${issuer} is not a sign-in service: its discovery document ${discovery.href} answered ${statusText(response)}.`;
  }
  const doc = await json(response);
  if (!doc) return `${issuer} is not a sign-in service: its discovery document ${discovery.href} is not JSON.`;
  if (doc.issuer !== issuer) {
    const said = typeof doc.issuer === 'string' ? doc.issuer : 'missing';
    return `${issuer}'s discovery document says its issuer is ${said}, not ${issuer}. Use the issuer exactly as the sign-in service names it.`;
  }
  const missing = [
    typeof doc.authorization_endpoint === 'string' && httpUrl(doc.authorization_endpoint) ? undefined : 'an authorization endpoint',
    typeof doc.token_endpoint === 'string' && httpUrl(doc.token_endpoint) ? undefined : 'a token endpoint',
  ].filter(Boolean);
  if (missing.length) return `${issuer}'s discovery document has no ${missing.join(' and no ')}, so Stint cannot sign in with it.`;
  return undefined;
}

async function checkServer(serverUrl: string, options: SettingsCheckOptions): Promise<string | undefined> {
  const base = httpUrl(serverUrl);
  if (!base) return `The Stint server address ${serverUrl} is not a web address (https://…).`;
  // Resolved as the agent's API client resolves its paths: relative to the server URL as a folder.
  const url = new URL('v1/openapi.json', base.href.endsWith('/') ? base.href : `${base.href}/`);
  const got = await get(url, 'follow', options);
  if ('error' in got) return `The Stint server at ${serverUrl} did not answer (${got.error}).`;
  const { response } = got;
  if (!response.ok) {
    await response.body?.cancel();
    return `${serverUrl} answered, but not as a Stint server: ${url.href} gave ${statusText(response)}.`;
  }
  const doc = await json(response);
  const paths = doc?.paths;
  if (!paths || typeof paths !== 'object' || !('/v1/me' in paths)) return `${serverUrl} answered, but not as a Stint server: ${url.href} does not describe the Stint API.`;
  return undefined;
}

/**
 * The issuer and audience the server accepts (its RFC 9728 metadata) against the ones being saved. A server that
 * publishes no metadata (an older one) is not held against the settings.
 */
async function checkAccepted(serverUrl: string, issuer: string | undefined, audience: string | undefined, options: SettingsCheckOptions): Promise<string | undefined> {
  const base = httpUrl(serverUrl);
  if (!base) return undefined;
  // Beside /v1, relative to the server URL as a folder (as the API client resolves its paths).
  const url = new URL('.well-known/oauth-protected-resource', base.href.endsWith('/') ? base.href : `${base.href}/`);
  const got = await get(url, 'follow', options);
  if ('error' in got || !got.response.ok) {
    if (!('error' in got)) await got.response.body?.cancel();
    return undefined;
  }
  const doc = await json(got.response);
  const expected = { audience: typeof doc?.resource === 'string' ? doc.resource : undefined, issuers: Array.isArray(doc?.authorization_servers) ? doc.authorization_servers.filter((s: unknown): s is string => typeof s === 'string') : [] };
  const wrong: string[] = [];
  if (audience && expected.audience && audience !== expected.audience) wrong.push(`the API audience "${expected.audience}" (you entered "${audience}")`);
  if (issuer && expected.issuers.length && !expected.issuers.includes(issuer)) wrong.push(`tokens from ${expected.issuers.join(' or ')} (you entered ${issuer})`);
  return wrong.length ? `The Stint server at ${serverUrl} expects ${wrong.join(' and ')}.` : undefined;
}

/** Scopes the issuer's discovery document does not offer (when it lists what it offers). */
async function checkScopes(issuer: string, scopes: string | undefined, options: SettingsCheckOptions): Promise<string | undefined> {
  const base = httpUrl(issuer);
  if (!base || !scopes) return undefined;
  const discovery = new URL(base.href);
  discovery.pathname = `${discovery.pathname.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const got = await get(discovery, 'manual', options);
  if ('error' in got) return undefined; // the issuer check says why it cannot be reached
  if (!got.response.ok) { await got.response.body?.cancel(); return undefined; }
  const offered = (await json(got.response))?.scopes_supported;
  if (!Array.isArray(offered)) return undefined;
  const missing = scopes.split(' ').filter((s) => !offered.includes(s));
  return missing.length ? `The sign-in service at ${issuer} does not offer the scope${missing.length === 1 ? '' : 's'} ${missing.join(', ')} (it offers ${offered.join(' ')}); remove ${missing.length === 1 ? 'it' : 'them'} from Scopes.` : undefined;
}
