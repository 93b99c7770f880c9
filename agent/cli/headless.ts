// `stint` without a person: a CI job or bot, told who it is by its environment. With STINT_CLIENT_ID and its secret
// (STINT_CLIENT_SECRET, or STINT_CLIENT_SECRET_FILE naming a file that holds it) the run signs in by the IdP's client
// credentials grant; with STINT_TOKEN_FILE it presents the workload identity token its platform wrote there (a CI
// provider's ID token). STINT_SERVER_URL (or --server) names the grant server; the issuer and audience come from
// STINT_ISSUER / STINT_AUDIENCE (or --issuer / --audience), else from the server's own metadata
// (/.well-known/oauth-protected-resource). Settings and secrets stay in this process's memory, and the secret is never
// printed. The one thing written is what a client needs as a file while `connect --exec` runs its command (the
// MariaDB option file, the SSH key and ssh_config): in a folder of this run's own (0700), removed when it ends.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceCredentials } from '../core/service-session';
import { MemorySettingsStore } from '../core/settings';
import { CliError } from './explain';

export interface Headless {
  credentials: ServiceCredentials;
  settings: MemorySettingsStore;
  /** Who this run is, for messages (the client id or the token file), never the secret. */
  who: string;
}

export interface HeadlessFlags { server?: string; issuer?: string; audience?: string }

/** Is this run a service's? (Checked before anything else, so a CI job never opens a browser or a keychain.) */
export function isHeadless(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.STINT_CLIENT_ID || env.STINT_TOKEN_FILE);
}

async function secretOf(env: NodeJS.ProcessEnv): Promise<string> {
  if (env.STINT_CLIENT_SECRET) return env.STINT_CLIENT_SECRET;
  const file = env.STINT_CLIENT_SECRET_FILE;
  if (!file) throw new CliError('STINT_CLIENT_ID is set but its secret is not: set STINT_CLIENT_SECRET, or STINT_CLIENT_SECRET_FILE to a file holding it.', 2);
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    if (secret) return secret;
  } catch {
    // Said below, without the cause: it could quote the file.
  }
  throw new CliError(`The client secret cannot be read from STINT_CLIENT_SECRET_FILE (${file}).`, 2);
}

/** The server's word on which issuer and audience its tokens come from and are for (RFC 9728). */
async function protectedResource(serverUrl: string, doFetch: typeof fetch): Promise<{ issuer?: string; audience?: string }> {
  try {
    const response = await doFetch(new URL('.well-known/oauth-protected-resource', serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`), { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) return {};
    const meta = (await response.json()) as { resource?: unknown; authorization_servers?: unknown };
    return {
      ...(typeof meta.resource === 'string' ? { audience: meta.resource } : {}),
      ...(Array.isArray(meta.authorization_servers) && typeof meta.authorization_servers[0] === 'string' ? { issuer: meta.authorization_servers[0] } : {}),
    };
  } catch {
    return {};
  }
}

/** The service's credentials and in-memory settings from the environment and flags. */
export async function headlessFromEnv(env: NodeJS.ProcessEnv, flags: HeadlessFlags, doFetch: typeof fetch = fetch): Promise<Headless> {
  const serverUrl = flags.server ?? env.STINT_SERVER_URL;
  if (!serverUrl) throw new CliError('A headless run needs the Stint server: set STINT_SERVER_URL (or pass --server).', 2);
  // A stable device per service client: an earlier run's grant can be taken back (resumed) by the next run.
  const who = env.STINT_CLIENT_ID ?? `token file ${env.STINT_TOKEN_FILE}`;
  const deviceId = `service-${createHash('sha256').update(`${serverUrl}\n${who}`).digest('hex').slice(0, 24)}`;
  let credentials: ServiceCredentials;
  let issuer = flags.issuer ?? env.STINT_ISSUER;
  let audience = flags.audience ?? env.STINT_AUDIENCE;
  if (env.STINT_CLIENT_ID) {
    const clientSecret = await secretOf(env);
    if (!issuer || !audience) {
      const meta = await protectedResource(serverUrl, doFetch);
      issuer ??= meta.issuer;
      audience ??= meta.audience;
    }
    if (!issuer || !audience) throw new CliError(`The server at ${serverUrl} did not say which issuer and audience it accepts: set STINT_ISSUER and STINT_AUDIENCE.`, 2);
    credentials = { kind: 'client_credentials', issuer, clientId: env.STINT_CLIENT_ID, clientSecret, audience };
  } else {
    credentials = { kind: 'token_file', path: env.STINT_TOKEN_FILE!, read: (path) => readFile(path, 'utf8') };
  }
  const settings = new MemorySettingsStore({ serverUrl, deviceId, ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}) });
  return { credentials, settings, who };
}

/** This run's own folder for its grants' client files (mkdtemp: 0700, a fresh name), and how to remove it at the end. */
export async function runFilesFolder(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'stint-service-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
