// The Electron shell's settings: the agent's preferences (SettingsStore, validated by the contract on every read)
// and the shell's own (launch at login) in one electron-store file under the app's userData directory.
// electron-store needs the Electron binary at runtime, so it is imported only by `openElectronStore` (index.ts);
// the classes below take a minimal key-value store and are tested under Node.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { DocumentSettingsStore } from '../../agent/core/settings';

export interface KeyValueStore {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

const AGENT_KEY = 'agent';
const SHELL_KEY = 'shell';

/** The agent's settings under one key of the shell's store, read and changed the one way every host does. */
export class ElectronSettingsStore extends DocumentSettingsStore {
  constructor(store: KeyValueStore) {
    super({ read: () => store.get(AGENT_KEY), write: (settings) => store.set(AGENT_KEY, settings) });
  }
}

export interface ShellSettings {
  launchAtLogin: boolean;
}

export function readShellSettings(store: KeyValueStore): ShellSettings {
  const raw = store.get(SHELL_KEY) as Partial<ShellSettings> | undefined;
  return { launchAtLogin: raw?.launchAtLogin === true };
}

export function writeShellSettings(store: KeyValueStore, patch: Partial<ShellSettings>): ShellSettings {
  const next = { ...readShellSettings(store), ...patch };
  store.set(SHELL_KEY, next);
  return next;
}

/** The real store (electron-store: a JSON file in userData, written atomically). Main process only. */
export async function openElectronStore(): Promise<KeyValueStore> {
  const { default: Store } = await import('electron-store');
  // Resource ids may contain dots: keys are never paths.
  return new Store<Record<string, unknown>>({ name: 'settings', accessPropertiesByDotNotation: false }) as unknown as KeyValueStore;
}

// ---- launch at login ----

export interface LoginItemApp {
  setLoginItemSettings(settings: { openAtLogin: boolean; openAsHidden?: boolean; args?: string[] }): void;
}

/** The XDG autostart entry on Linux, where Electron's setLoginItemSettings does nothing. */
export function autostartEntry(execPath: string): string {
  const quoted = /[\s"'\\$`]/.test(execPath) ? `"${execPath.replace(/(["\\$`])/g, '\\$1')}"` : execPath;
  return ['[Desktop Entry]', 'Type=Application', 'Name=Stint', 'Comment=Just-in-time database access', `Exec=${quoted} --hidden`, 'X-GNOME-Autostart-enabled=true', 'NoDisplay=true', ''].join('\n');
}

export function autostartPath(configHome = process.env.XDG_CONFIG_HOME || join(homedir(), '.config')): string {
  return join(configHome, 'autostart', 'stint.desktop');
}

/** Applies the setting to the OS: the login item on macOS and Windows, an autostart file on Linux. */
export async function applyLaunchAtLogin(enabled: boolean, deps: { app: LoginItemApp; platform: NodeJS.Platform; execPath: string; autostartFile?: string }): Promise<void> {
  if (deps.platform === 'linux') {
    const file = deps.autostartFile ?? autostartPath();
    if (enabled) {
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, autostartEntry(deps.execPath), { mode: 0o644 });
    } else {
      await rm(file, { force: true });
    }
    return;
  }
  deps.app.setLoginItemSettings({ openAtLogin: enabled, openAsHidden: true, args: ['--hidden'] });
}
