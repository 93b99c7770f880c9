// Opening psql in a terminal (per OS, password only in the environment), the electron-store-backed settings with an
// in-memory key-value store, launch at login, and the session permission policy.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceDir } from '../../dev/run-dir';
import { ConfSettingsStore, MemorySettingsStore, settingsFromEnvironment } from '../../agent/core/settings';
import { psqlLaunchPlan, shellLaunchPlan, writeMacScript, onPath, type LaunchPlan } from '../../agent/core/launcher';
import type { Launcher, PsqlTarget } from '../../agent/core/agent';
import { clientKind } from '../../agent/core/kinds';
import { AgentError } from '../../agent/core/errors';
import {
  ElectronSettingsStore, applyLaunchAtLogin, autostartEntry, readShellSettings, writeShellSettings, type KeyValueStore,
} from '../../desktop/main/settings-store';
import { hardenSession, permissionAllowed } from '../../desktop/main/session-policy';

const target: PsqlTarget = {
  host: '127.0.0.1', port: 15432, user: 'stint_alice_7f3a', database: 'orders',
  password: "s3cr'et \"pa$s`word", uri: "postgresql://stint_alice_7f3a:s3cr'et@127.0.0.1:15432/orders",
};

const commandLine = (plan: LaunchPlan) => (plan.ok ? [plan.command.command, ...plan.command.args].join(' ') : '');

describe('psql launcher', () => {
  it('Linux: the first terminal that exists, psql with the password only in PGPASSWORD', () => {
    const has = (...names: string[]) => (c: string) => names.includes(c);
    const plan = psqlLaunchPlan('linux', target, { available: has('gnome-terminal', 'konsole') });
    expect(plan).toEqual({ ok: true, command: { command: 'gnome-terminal', args: ['--', 'psql', '-h', '127.0.0.1', '-p', '15432', '-U', 'stint_alice_7f3a', '-d', 'orders'], env: { PGPASSWORD: target.password } } });
    expect(psqlLaunchPlan('linux', target, { available: has('x-terminal-emulator', 'gnome-terminal') })).toMatchObject({ command: { command: 'x-terminal-emulator', args: ['-e', 'psql', '-h', '127.0.0.1', '-p', '15432', '-U', 'stint_alice_7f3a', '-d', 'orders'] } });
    expect(psqlLaunchPlan('linux', target, { available: has('konsole') })).toMatchObject({ command: { command: 'konsole', args: ['-e', 'psql', '-h', '127.0.0.1', '-p', '15432', '-U', 'stint_alice_7f3a', '-d', 'orders'] } });
    const none = psqlLaunchPlan('linux', target, { available: () => false });
    expect(none).toMatchObject({ ok: false, reason: expect.stringMatching(/No terminal found .*Copy the connection URI/) });
  });

  it('Windows: cmd /c start a new console that inherits PGPASSWORD', () => {
    const plan = psqlLaunchPlan('win32', target, { available: () => true });
    expect(plan).toEqual({ ok: true, command: { command: 'cmd.exe', args: ['/d', '/c', 'start', '"Stint"', 'cmd', '/k', 'psql', '-h', '127.0.0.1', '-p', '15432', '-U', 'stint_alice_7f3a', '-d', 'orders'], env: { PGPASSWORD: target.password }, verbatim: true } });
    // cmd.exe would interpret & | < > ^ %: such names are refused rather than escaped.
    expect(psqlLaunchPlan('win32', { ...target, database: 'orders&calc' }, { available: () => true }).ok).toBe(false);
  });

  it('macOS: open -a Terminal with a script; nothing secret on any command line', () => {
    const plan = psqlLaunchPlan('darwin', target, { available: () => true, macScript: '/tmp/stint-psql-x/psql.command' });
    expect(plan).toEqual({ ok: true, command: { command: 'open', args: ['-a', 'Terminal', '/tmp/stint-psql-x/psql.command'], env: {} } });
  });

  it.each(['linux', 'win32', 'darwin'] as const)('%s: the password and the URI never appear in the arguments', (platform) => {
    const plan = psqlLaunchPlan(platform, target, { available: () => true, macScript: '/tmp/x/psql.command' });
    expect(plan.ok).toBe(true);
    expect(commandLine(plan)).not.toContain('s3cr');
    expect(commandLine(plan)).not.toContain('postgresql://');
  });

  it('the macOS script hands psql the password in its environment and leaves no secret on disk', () => {
    const dir = serviceDir('stint-launcher');
    const bin = join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin]);
    const fakePsql = join(bin, 'psql');
    const out = join(dir, 'psql-saw.json');
    writeFileSync(fakePsql, `#!/bin/sh\nnode -e 'require("fs").writeFileSync(process.argv[1], JSON.stringify({ pw: process.env.PGPASSWORD, args: process.argv.slice(2) }))' ${out} "$@"\n`, { mode: 0o755 });
    return writeMacScript(target, { dir, psql: fakePsql }).then(({ script, dir: scriptDir }) => {
      expect(statSync(scriptDir).mode & 0o777).toBe(0o700);
      expect(statSync(join(scriptDir, 'secret')).mode & 0o777).toBe(0o600);
      expect(readFileSync(script, 'utf8')).not.toContain('s3cr');
      execFileSync('/bin/sh', [script]);
      const saw = JSON.parse(readFileSync(out, 'utf8'));
      expect(saw).toEqual({ pw: target.password, args: ['-h', '127.0.0.1', '-p', '15432', '-U', 'stint_alice_7f3a', '-d', 'orders'] });
      expect(existsSync(scriptDir)).toBe(false);
    });
  });

  it('another kind\'s client command (no secret on it) runs in the terminal found; Windows and no terminal say to copy it', () => {
    const command = "mariadb --defaults-file='/home/a/.config/stint/grants/g1/my.cnf'";
    const has = (...names: string[]) => (c: string) => names.includes(c);
    expect(shellLaunchPlan('linux', command, { available: has('gnome-terminal') })).toEqual({ ok: true, command: { command: 'gnome-terminal', args: ['--', '/bin/sh', '-c', command], env: {} } });
    expect(shellLaunchPlan('darwin', command, { available: has(), macScript: '/tmp/s/client.command' })).toEqual({ ok: true, command: { command: 'open', args: ['-a', 'Terminal', '/tmp/s/client.command'], env: {} } });
    expect(shellLaunchPlan('win32', command, { available: has() })).toMatchObject({ ok: false, reason: expect.stringMatching(/Copy it/) });
    expect(shellLaunchPlan('linux', command, { available: has() })).toMatchObject({ ok: false, reason: expect.stringMatching(/No terminal found/) });
  });

  it('an SSH grant opens its ssh command in a terminal, as MariaDB\'s does; with no terminal the refusal is the launcher\'s (the agent adds the command to run)', async () => {
    const command = "ssh -F '/home/a/.config/stint/grants/g1/ssh_config' stint-staging-web";
    const opened: string[] = [];
    const launcher: Launcher = { openPsql: async () => { throw new Error('not psql'); }, openCommand: async (line) => { opened.push(line); } };
    await clientKind('ssh').open(launcher, target, command);
    expect(opened).toEqual([command]);
    const noTerminal: Launcher = { ...launcher, openCommand: async () => { throw new AgentError('launcher_failed', 'No terminal found (tried xterm). Copy the connection URI instead.'); } };
    await expect(clientKind('ssh').open(noTerminal, target, command)).rejects.toMatchObject({ code: 'launcher_failed', message: expect.stringMatching(/No terminal found/) });
    await expect(clientKind('ssh').open(launcher, target, undefined)).rejects.toMatchObject({ code: 'launcher_failed', message: expect.stringMatching(/ssh files could not be written/) });
    expect(opened).toEqual([command]);
  });

  it('finds programs on PATH', () => {
    expect(onPath('sh', '/nonexistent:/bin:/usr/bin')).toBe(true);
    expect(onPath('definitely-not-a-terminal', '/bin:/usr/bin')).toBe(false);
  });
});

class MemoryKv implements KeyValueStore {
  data = new Map<string, unknown>();
  get(key: string) { return structuredClone(this.data.get(key)); }
  set(key: string, value: unknown) { this.data.set(key, structuredClone(value)); }
}

describe('Electron settings store', () => {
  it('makes a device id once, keeps valid settings and drops invalid fields from a hand-edited file', () => {
    const kv = new MemoryKv();
    kv.set('agent', { serverUrl: 'https://stint.example.com', ports: { 'prod-orders': 15432 }, preferredClient: 'telnet' });
    const store = new ElectronSettingsStore(kv);
    const first = store.get();
    expect(first.serverUrl).toBe('https://stint.example.com');
    expect(first.ports).toEqual({ 'prod-orders': 15432 });
    expect(first.preferredClient).toBe('psql');
    expect(first.deviceId.length).toBeGreaterThanOrEqual(8);
    expect(new ElectronSettingsStore(kv).get().deviceId).toBe(first.deviceId);
  });

  it('updates through the contract: a bad patch changes nothing', () => {
    const kv = new MemoryKv();
    const store = new ElectronSettingsStore(kv);
    expect(store.update({ serverUrl: 'https://stint.example.com' }).serverUrl).toBe('https://stint.example.com');
    expect(() => store.update({ serverUrl: 'not a url' } as never)).toThrow();
    expect(() => store.update({ deviceId: 'stolen-device' } as never)).toThrow();
    expect(store.get().serverUrl).toBe('https://stint.example.com');
  });

  it('every store updates the one way: the same bad patch is refused by the shell\'s, the file\'s and the memory store', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stint-settings-'));
    try {
      for (const store of [new ElectronSettingsStore(new MemoryKv()), new ConfSettingsStore({ cwd: dir }), new MemorySettingsStore()]) {
        expect(() => store.update({ serverUrl: 'not a url' } as never), store.constructor.name).toThrow();
        expect(store.update({ serverUrl: 'https://stint.example.com' }).serverUrl).toBe('https://stint.example.com');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the server from the environment (npm start) only while none is configured', () => {
    const env = { STINT_SERVER_URL: 'http://127.0.0.1:7800', STINT_ISSUER: 'http://127.0.0.1:7700' };
    const fresh = new MemorySettingsStore();
    expect(settingsFromEnvironment(fresh.get(), env)).toEqual({ serverUrl: 'http://127.0.0.1:7800', issuer: 'http://127.0.0.1:7700' });
    const chosen = new MemorySettingsStore({ serverUrl: 'https://stint.example.com' });
    expect(settingsFromEnvironment(chosen.get(), env)).toBeUndefined();
    expect(settingsFromEnvironment(fresh.get(), {})).toBeUndefined();
  });

  it('keeps the shell settings beside the agent settings', () => {
    const kv = new MemoryKv();
    const store = new ElectronSettingsStore(kv);
    expect(readShellSettings(kv)).toEqual({ launchAtLogin: false });
    writeShellSettings(kv, { launchAtLogin: true });
    expect(readShellSettings(kv)).toEqual({ launchAtLogin: true });
    expect(store.get().serverUrl).toBeUndefined();
    kv.set('shell', { launchAtLogin: 'yes' });
    expect(readShellSettings(kv)).toEqual({ launchAtLogin: false });
  });
});

describe('launch at login', () => {
  it('macOS and Windows: the OS login item, started hidden', async () => {
    const calls: unknown[] = [];
    const app = { setLoginItemSettings: (s: unknown) => void calls.push(s) };
    await applyLaunchAtLogin(true, { app, platform: 'darwin', execPath: '/Applications/Stint.app/Contents/MacOS/Stint' });
    await applyLaunchAtLogin(false, { app, platform: 'win32', execPath: 'C:\\Stint\\Stint.exe' });
    expect(calls).toEqual([{ openAtLogin: true, openAsHidden: true, args: ['--hidden'] }, { openAtLogin: false, openAsHidden: true, args: ['--hidden'] }]);
  });

  it('Linux: an XDG autostart entry, written and removed', async () => {
    const file = join(serviceDir('stint-autostart'), 'autostart', 'stint.desktop');
    const app = { setLoginItemSettings: () => { throw new Error('not on Linux'); } };
    await applyLaunchAtLogin(true, { app, platform: 'linux', execPath: '/home/alice/Apps/Stint 1.0.AppImage', autostartFile: file });
    expect(readFileSync(file, 'utf8')).toContain('Exec="/home/alice/Apps/Stint 1.0.AppImage" --hidden');
    await applyLaunchAtLogin(false, { app, platform: 'linux', execPath: '/x', autostartFile: file });
    expect(existsSync(file)).toBe(false);
    expect(autostartEntry('/opt/Stint/stint')).toContain('Exec=/opt/Stint/stint --hidden');
  });
});

describe('session permissions', () => {
  it('grants notifications and sanitized clipboard writes only, when asked and when checked', () => {
    const handlers: Record<string, any> = {};
    hardenSession({
      setPermissionRequestHandler: (h) => { handlers.request = h; },
      setPermissionCheckHandler: (h) => { handlers.check = h; },
      webRequest: { onHeadersReceived: (l) => { handlers.headers = l; } },
    });
    for (const permission of ['notifications', 'clipboard-sanitized-write', 'media', 'geolocation', 'clipboard-read', 'openExternal', 'hid']) {
      let granted: boolean | undefined;
      handlers.request(null, permission, (g: boolean) => { granted = g; });
      expect(granted, permission).toBe(permissionAllowed(permission));
      expect(handlers.check(null, permission), permission).toBe(permissionAllowed(permission));
    }
    expect(['notifications', 'clipboard-sanitized-write', 'media', 'clipboard-read'].map(permissionAllowed)).toEqual([true, true, false, false]);
    let headers: any;
    handlers.headers({ responseHeaders: { 'X-Other': ['1'] } }, (r: any) => { headers = r.responseHeaders; });
    expect(headers['X-Other']).toEqual(['1']);
    expect(headers['Content-Security-Policy'][0]).toMatch(/^default-src 'none'/);
  });
});
