// Non-secret preferences. The interface is what the core uses; the Electron shell gives it an electron-store,
// the web host and CLI this `conf` one. Validated with the contract on every read, so a hand-edited or older file
// cannot put the agent in an invalid state (invalid fields fall back to their defaults).
import { randomUUID } from 'node:crypto';
import Conf from 'conf';
import { AgentSettings, SettingsPatch } from '../../shared/contract/agent';

export interface SettingsStore {
  get(): AgentSettings;
  update(patch: SettingsPatch): AgentSettings;
}

/** Parse what a store holds; keep the valid fields, drop the invalid ones, make the device id once. */
export function normaliseSettings(raw: unknown, makeDeviceId: () => string = randomUUID): { settings: AgentSettings; changed: boolean } {
  const input: Record<string, unknown> = raw && typeof raw === 'object' ? { ...(raw as Record<string, unknown>) } : {};
  let changed = false;
  if (typeof input.deviceId !== 'string' || input.deviceId.length < 8) {
    input.deviceId = makeDeviceId();
    changed = true;
  }
  const first = AgentSettings.safeParse(input);
  if (first.success) return { settings: first.data, changed };
  for (const issue of first.error.issues) {
    const key = issue.path[0];
    if (typeof key === 'string' && key !== 'deviceId') delete input[key];
  }
  return { settings: AgentSettings.parse(input), changed: true };
}

/** Where a settings document lives: a conf file, a key in the Electron shell's store, memory. */
export interface SettingsDocument {
  read(): unknown;
  write(settings: AgentSettings): void;
}

/**
 * The one way settings are read and changed, whatever holds them: every read is validated by the contract, every
 * change is a SettingsPatch merged onto the current settings and validated whole before it is written.
 */
export class DocumentSettingsStore implements SettingsStore {
  constructor(private readonly document: SettingsDocument) {
    const { settings, changed } = normaliseSettings(document.read());
    if (changed) document.write(settings);
  }

  get(): AgentSettings {
    return normaliseSettings(this.document.read()).settings;
  }

  update(patch: SettingsPatch): AgentSettings {
    const next = AgentSettings.parse({ ...this.get(), ...SettingsPatch.parse(patch) });
    this.document.write(next);
    return next;
  }
}

/** Settings in a JSON file (conf: written atomically), for the web host and the CLI. */
export class ConfSettingsStore extends DocumentSettingsStore {
  readonly path: string;

  constructor(options: { cwd?: string; projectName?: string; configName?: string } = {}) {
    const conf = new Conf<Record<string, unknown>>({
      projectName: options.projectName ?? 'stint',
      configName: options.configName ?? 'agent',
      // Resource ids may contain dots; keys are never paths.
      accessPropertiesByDotNotation: false,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    super({ read: () => conf.store, write: (settings) => { conf.store = settings; } });
    this.path = conf.path;
  }
}

/** In-memory settings, for tests and one-shot CLI runs that must not touch the user's file. */
export class MemorySettingsStore extends DocumentSettingsStore {
  constructor(initial: Partial<AgentSettings> = {}) {
    let held: unknown = initial;
    super({ read: () => structuredClone(held), write: (settings) => { held = structuredClone(settings); } });
  }
}

/**
 * What the environment says to use when nothing is configured yet (`npm start` points the tray app at its embedded
 * demo this way). Applied only to settings without a server, so a user's own choice in Settings always wins.
 */
export function settingsFromEnvironment(current: AgentSettings, env: NodeJS.ProcessEnv): SettingsPatch | undefined {
  if (!env.STINT_SERVER_URL || current.serverUrl) return undefined;
  return {
    serverUrl: env.STINT_SERVER_URL,
    ...(env.STINT_ISSUER ? { issuer: env.STINT_ISSUER } : {}),
    ...(env.STINT_AUDIENCE ? { audience: env.STINT_AUDIENCE } : {}),
  };
}
