// How a headless `stint` (a CI job) reads who it is from its environment, and what it says when something is missing
// — before any network call, as usage errors (exit 2) that never quote the secret.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headlessFromEnv, isHeadless } from '../../agent/cli/headless';
import { CliError } from '../../agent/cli/explain';
import { serviceDir } from '../../dev/run-dir';

const noNetwork = (() => { throw new Error('no network expected'); }) as unknown as typeof fetch;
const refused = async (env: NodeJS.ProcessEnv) => {
  const error = await headlessFromEnv(env, {}, noNetwork).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(CliError);
  return error as CliError;
};

describe('headless stint', () => {
  it('is headless only with a client id or a token file', () => {
    expect(isHeadless({})).toBe(false);
    expect(isHeadless({ STINT_CLIENT_ID: 'stint-ci' })).toBe(true);
    expect(isHeadless({ STINT_TOKEN_FILE: '/run/token' })).toBe(true);
  });

  it('names what is missing, as a usage error', async () => {
    expect((await refused({ STINT_CLIENT_ID: 'stint-ci', STINT_CLIENT_SECRET: 's' })).message).toContain('STINT_SERVER_URL');
    const noSecret = await refused({ STINT_CLIENT_ID: 'stint-ci', STINT_SERVER_URL: 'http://127.0.0.1:1' });
    expect(noSecret.exitCode).toBe(2);
    expect(noSecret.message).toContain('STINT_CLIENT_SECRET_FILE');
    const unreadable = await refused({ STINT_CLIENT_ID: 'stint-ci', STINT_SERVER_URL: 'http://127.0.0.1:1', STINT_CLIENT_SECRET_FILE: '/nonexistent/secret' });
    expect(unreadable.message).toContain('/nonexistent/secret');
  });

  it('takes the secret from a file, and settings only in memory with a device of its own per client', async () => {
    const dir = serviceDir('headless');
    writeFileSync(join(dir, 'secret'), 'top-secret-value\n');
    const env = { STINT_CLIENT_ID: 'stint-ci', STINT_SERVER_URL: 'http://127.0.0.1:1', STINT_CLIENT_SECRET_FILE: join(dir, 'secret'), STINT_ISSUER: 'http://127.0.0.1:2', STINT_AUDIENCE: 'api' };
    const first = await headlessFromEnv(env, {}, noNetwork);
    expect(first.credentials).toMatchObject({ kind: 'client_credentials', clientId: 'stint-ci', clientSecret: 'top-secret-value', issuer: 'http://127.0.0.1:2', audience: 'api' });
    expect(first.who).toBe('stint-ci');
    expect(first.settings.get()).toMatchObject({ serverUrl: 'http://127.0.0.1:1', issuer: 'http://127.0.0.1:2', audience: 'api' });
    // The next run of the same client is the same device (it may take back a grant an earlier run left).
    expect((await headlessFromEnv(env, {}, noNetwork)).settings.get().deviceId).toBe(first.settings.get().deviceId);
    expect((await headlessFromEnv({ ...env, STINT_CLIENT_ID: 'other' }, {}, noNetwork)).settings.get().deviceId).not.toBe(first.settings.get().deviceId);
  });
});
