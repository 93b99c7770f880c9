// The sign-in settings check (agent/core/settings-check.ts) against real local services: the dev OpenID provider
// and the real grant server, plus closed ports and a socket that never answers. Then the agent's updateSettings:
// a failed check saves nothing, unchanged fields are not checked again, other settings never touch the network.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { startIdp, type IdpInstance } from '../../dev/idp';
import { startGrantServer, type RunningGrantServer } from '../../dev/grant-server';
import { freePort } from '../../dev/ports';
import { Agent } from '../../agent/core/agent';
import { AgentError } from '../../agent/core/errors';
import { MemorySettingsStore } from '../../agent/core/settings';
import { changedSignInFields, checkSignInSettings } from '../../agent/core/settings-check';
import { FakeSession } from './fake-session';
import { MemorySecretStore } from './memory-secrets';

let idp: IdpInstance;
let server: RunningGrantServer;
let closedUrl: string;
let silent: { url: string; close: () => Promise<void> };

/** Accepts connections and never says a word. */
async function startSilent(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const s: Server = createServer((socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); });
  const port = await freePort();
  await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { for (const socket of sockets) socket.destroy(); s.close(() => resolve()); }),
  };
}

beforeAll(async () => {
  idp = await startIdp();
  [server, silent] = await Promise.all([startGrantServer({ idp }), startSilent()]);
  closedUrl = `http://127.0.0.1:${await freePort()}`; // nothing listens there
});
afterAll(async () => {
  await silent?.close();
  await server?.close();
  await idp?.close();
});

const fresh = { clientId: 'stint-agent' } as const;
const good = () => ({ serverUrl: server.url, issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience });

/** A fetch that records every URL it is asked for, then really fetches it. */
function recording() {
  const urls: string[] = [];
  const f: typeof fetch = (input, init) => { urls.push(String(input instanceof Request ? input.url : input)); return fetch(input, init); };
  return { fetch: f, urls };
}

async function refusal(patch: Parameters<typeof checkSignInSettings>[1], before: Parameters<typeof checkSignInSettings>[0] = fresh, timeoutMs?: number): Promise<string> {
  const error = await checkSignInSettings(before, patch, timeoutMs ? { timeoutMs } : {}).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(AgentError);
  expect(error).toMatchObject({ code: 'invalid_input' });
  return (error as AgentError).message;
}

describe('checkSignInSettings', () => {
  it('accepts the server URL, issuer, client ID and audience of a working setup', async () => {
    const r = recording();
    await expect(checkSignInSettings(fresh, good(), { fetch: r.fetch })).resolves.toBeUndefined();
    expect(r.urls.sort()).toEqual([`${idp.issuer}/.well-known/openid-configuration`, `${server.url}/v1/openapi.json`, `${server.url}/.well-known/oauth-protected-resource`].sort());
  });

  it('an audience or issuer the server does not accept: names what the server expects (its RFC 9728 metadata)', async () => {
    const wrongAudience = await refusal({ ...good(), audience: 'https://other.example/api' });
    expect(wrongAudience).toContain(`The Stint server at ${server.url} expects the API audience "${idp.audience}" (you entered "https://other.example/api")`);
    // The issuer is a real sign-in service, just not the one this server trusts.
    const other = await startIdp();
    try {
      expect(await refusal({ ...good(), issuer: other.issuer })).toContain(`expects tokens from ${idp.issuer} (you entered ${other.issuer})`);
    } finally {
      await other.close();
    }
  });

  it('an issuer nothing answers at: the sign-in service could not be reached', async () => {
    expect(await refusal({ ...good(), issuer: closedUrl })).toBe(`The sign-in service at ${closedUrl} could not be reached (connection refused). Nothing was saved.`);
  });

  it('an issuer that does not answer in time', async () => {
    expect(await refusal({ issuer: silent.url }, fresh, 300)).toBe(`The sign-in service at ${silent.url} could not be reached (no answer within 0.3 s). Nothing was saved.`);
  });

  it('an issuer whose discovery document names another issuer: says which one it names', async () => {
    const typed = idp.issuer.replace('localhost', '127.0.0.1'); // the same IdP, but not its issuer identifier
    expect(typed).not.toBe(idp.issuer);
    expect(await refusal({ issuer: typed })).toBe(`${typed}'s discovery document says its issuer is ${idp.issuer}, not ${typed}. Use the issuer exactly as the sign-in service names it. Nothing was saved.`);
    // A trailing slash is another identifier too (tokens carry the issuer exactly).
    expect(await refusal({ issuer: `${idp.issuer}/` })).toContain(`says its issuer is ${idp.issuer}, not ${idp.issuer}/.`);
  });

  it('an issuer that is not a sign-in service (the Stint server) has no discovery document', async () => {
    expect(await refusal({ issuer: server.url })).toBe(`${server.url} is not a sign-in service: its discovery document ${server.url}/.well-known/openid-configuration answered HTTP 404 Not Found. Nothing was saved.`);
  });

  it('plain http is refused for an issuer that is not this computer, without a request', async () => {
    const r = recording();
    const error = await checkSignInSettings(fresh, { issuer: 'http://login.example.com' }, { fetch: r.fetch }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid_input', message: 'The sign-in service address http://login.example.com must start with https:// (plain http is allowed only for this computer). Nothing was saved.' });
    expect(r.urls).toEqual([]);
  });

  it('an empty audience or client ID is refused', async () => {
    expect(await refusal({ ...good(), audience: '  ' })).toMatch(/^The API audience is empty: /);
    expect(await refusal({ ...good(), clientId: '' })).toMatch(/^The client ID is empty: /);
  });

  it('a server nothing answers at: the Stint server did not answer', async () => {
    expect(await refusal({ ...good(), serverUrl: closedUrl })).toBe(`The Stint server at ${closedUrl} did not answer (connection refused). Nothing was saved.`);
    expect(await refusal({ serverUrl: silent.url }, fresh, 300)).toBe(`The Stint server at ${silent.url} did not answer (no answer within 0.3 s). Nothing was saved.`);
  });

  it('a server URL that is not a Stint server (the sign-in service) is refused', async () => {
    expect(await refusal({ serverUrl: idp.issuer })).toBe(`${idp.issuer} answered, but not as a Stint server: ${idp.issuer}/v1/openapi.json gave HTTP 404 Not Found. Nothing was saved.`);
  });

  it('names every failure at once', async () => {
    const message = await refusal({ serverUrl: closedUrl, issuer: server.url, audience: '' });
    expect(message).toContain(`The Stint server at ${closedUrl} did not answer`);
    expect(message).toContain(`${server.url} is not a sign-in service`);
    expect(message).toContain('The API audience is empty');
  });

  it('checks only the fields that change; no request when none does', async () => {
    const saved = { serverUrl: closedUrl, issuer: idp.issuer, clientId: 'stint-agent', audience: 'x' };
    expect(changedSignInFields(saved, { ...saved, audience: 'y', ports: {} })).toEqual(['audience']);
    const r = recording();
    // The saved (unreachable) server and the saved issuer are not checked again; a new audience is held against the
    // server's metadata, which an unreachable server cannot give (not held against the user).
    await checkSignInSettings(saved, { ...saved, audience: idp.audience, preferredClient: 'uri', ports: { a: 15000 }, defaultDurationSeconds: 900 }, { fetch: r.fetch });
    await checkSignInSettings({ ...saved, audience: idp.audience }, { serverUrl: server.url }, { fetch: r.fetch });
    expect(r.urls).toEqual([`${closedUrl}/.well-known/oauth-protected-resource`, `${server.url}/v1/openapi.json`, `${server.url}/.well-known/oauth-protected-resource`]);
    expect(await checkSignInSettings({ clientId: 'stint-agent' }, { defaultDurationSeconds: 900 }, { fetch: r.fetch })).toBeUndefined();
    expect(r.urls).toHaveLength(3);
  });
});

describe('Agent.updateSettings', () => {
  const agentWith = (initial: ConstructorParameters<typeof MemorySettingsStore>[0] = {}) => {
    const settings = new MemorySettingsStore(initial);
    const r = recording();
    const agent = new Agent({ settings, secrets: new MemorySecretStore(), session: new FakeSession(), fetch: r.fetch });
    return { agent, settings, urls: r.urls };
  };

  it('a failed check saves nothing (not even the fields that were fine) and says what failed', async () => {
    const { agent, settings } = agentWith();
    const before = settings.get();
    await expect(agent.api.updateSettings({ ...good(), issuer: closedUrl, preferredClient: 'uri' }))
      .rejects.toMatchObject({ code: 'invalid_input', message: `The sign-in service at ${closedUrl} could not be reached (connection refused). Nothing was saved.` });
    expect(settings.get()).toEqual(before);

    await expect(agent.api.updateSettings({ ...good(), audience: '' })).rejects.toMatchObject({ code: 'invalid_input', message: expect.stringMatching(/^The API audience is empty/) });
    await expect(agent.api.updateSettings({ ...good(), serverUrl: closedUrl })).rejects.toMatchObject({ code: 'invalid_input', message: expect.stringMatching(/^The Stint server at .* did not answer/) });
    expect(settings.get()).toEqual(before);

    expect(await agent.api.updateSettings({ ...good(), preferredClient: 'uri' })).toMatchObject({ ...good(), preferredClient: 'uri' });
    expect(settings.get()).toMatchObject(good());
    await agent.dispose();
  });

  it('saving ports, the preferred client or the duration never touches the network, even with sign-in fields resent unchanged', async () => {
    // Saved settings that would fail every check: not checked again because they do not change.
    const { agent, urls } = agentWith({ serverUrl: closedUrl, issuer: closedUrl, audience: 'whatever' });
    await agent.api.updateSettings({ ports: { 'prod-orders': 15999 }, preferredClient: 'uri', defaultDurationSeconds: 900 });
    await agent.api.updateSettings({ serverUrl: closedUrl, issuer: closedUrl, clientId: 'stint-agent', audience: 'whatever', preferredClient: 'psql' });
    expect(urls).toEqual([]);
    await agent.dispose();
  });
});
