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

export class ConfSettingsStore implements SettingsStore {
  private readonly conf: Conf<Record<string, unknown>>;

  constructor(options: { cwd?: string; projectName?: string; configName?: string } = {}) {
    this.conf = new Conf<Record<string, unknown>>({
      projectName: options.projectName ?? 'stint',
      configName: options.configName ?? 'agent',
      // Resource ids may contain dots; keys are never paths.
      accessPropertiesByDotNotation: false,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    const { settings, changed } = normaliseSettings(this.conf.store);
    if (changed) this.conf.store = settings;
  }

  get path(): string {
    return this.conf.path;
  }

  get(): AgentSettings {
    return normaliseSettings(this.conf.store).settings;
  }

  update(patch: SettingsPatch): AgentSettings {
    const parsed = SettingsPatch.parse(patch);
    const next = AgentSettings.parse({ ...this.get(), ...parsed });
    this.conf.store = next;
    return next;
  }
}

/** In-memory settings, for tests and one-shot CLI runs that must not touch the user's file. */
export class MemorySettingsStore implements SettingsStore {
  private settings: AgentSettings;
  constructor(initial: Partial<AgentSettings> = {}) {
    this.settings = normaliseSettings(initial).settings;
  }
  get(): AgentSettings {
    return structuredClone(this.settings);
  }
  update(patch: SettingsPatch): AgentSettings {
    this.settings = AgentSettings.parse({ ...this.settings, ...SettingsPatch.parse(patch) });
    return this.get();
  }
}
