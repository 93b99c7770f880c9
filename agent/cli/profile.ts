// Which agent profile a `stint` run is: its keychain namespace (session, grant secrets) and its settings file. The
// CLI is never the tray app's profile: every agent wipes at start the grant items in its namespace that it does not
// hold, so sharing `stint` with the tray app would erase the tray's live secrets.
import { dirname, join } from 'node:path';
import { keychainServiceFor } from '../core/compose';
import { isAgentError } from '../core/errors';
import { ConfSettingsStore } from '../core/settings';
import { CliError } from './explain';

export const DEFAULT_PROFILE = 'cli';

/** `--profile`, else `$STINT_PROFILE`, else `cli`; a name that cannot be a keychain namespace is a usage error. */
export function resolveProfile(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const profile = flag ?? (env.STINT_PROFILE || DEFAULT_PROFILE);
  // An empty name would be the tray app's own namespace (keychainServiceFor('') is `stint`).
  if (!profile) throw new CliError('--profile needs a name (lower-case letters, digits and dashes).', 2);
  try {
    keychainServiceFor(profile);
  } catch (error) {
    if (isAgentError(error, 'invalid_input')) throw new CliError(error.message, 2);
    throw error;
  }
  return profile;
}

/** The profile's own folder beside its settings: per-grant client files and the agent socket. */
export function profileDataDir(settings: ConfSettingsStore, profile: string): string {
  return join(dirname(settings.path), 'profiles', profile);
}

/** The profile's settings: `agent.json` for `cli` (where the CLI always kept them), `agent-<profile>.json` otherwise. */
export function cliSettings(profile: string, configDir?: string): ConfSettingsStore {
  return new ConfSettingsStore({ configName: profile === DEFAULT_PROFILE ? 'agent' : `agent-${profile}`, ...(configDir ? { cwd: configDir } : {}) });
}
