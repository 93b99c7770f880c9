// Installers cannot be built here (electron-builder fetches Electron's binaries from the network), so this checks
// what can go wrong before that: the config is valid against electron-builder's own schema, every file it names
// exists, the stint:// protocol and the update feed are set, and the shell bundles with only allowed externals.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import Ajv from 'ajv';

const config = parse(readFileSync('build/electron-builder.yml', 'utf8'));

describe('packaging', () => {
  it('electron-builder config is valid against its schema', () => {
    const schema = JSON.parse(readFileSync('node_modules/app-builder-lib/scheme.json', 'utf8'));
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const valid = validate(config);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('flips the Electron fuses that would let a local program run code as Stint (#19)', () => {
    expect(config.electronFuses).toEqual({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
    });
    expect(config.asar).toBe(true);
  });

  it('every file the config names exists', () => {
    const files = [config.linux.icon, config.mac.icon, config.win.icon, config.mac.entitlements, config.mac.entitlementsInherit];
    for (const file of files) expect(existsSync(file), file).toBe(true);
    for (const state of ['idle', 'active', 'pending', 'attention', 'offline']) {
      expect(existsSync(`build/resources/tray/${state}Template.png`), state).toBe(true);
      expect(existsSync(`build/resources/tray/${state}.png`), state).toBe(true);
    }
  });

  it('registers stint:// and updates from a generic feed, with the Touch ID keychain group on macOS', () => {
    expect(config.protocols).toEqual([{ name: 'Stint', schemes: ['stint'] }]);
    expect(config.publish[0]).toMatchObject({ provider: 'generic' });
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.mac.target).toEqual(['dmg']);
    expect(config.win.target).toEqual(['nsis']);
    expect(readFileSync(config.mac.entitlements, 'utf8')).toContain('keychain-access-groups');
  });

  it('the main process and preload bundle, and the preload needs nothing but electron', () => {
    const out = mkdtempSync(join(tmpdir(), 'stint-bundle-'));
    try {
      execFileSync('node', ['build/build-electron.mjs', out]);
      expect(existsSync(join(out, 'main/index.js'))).toBe(true);
      const preload = readFileSync(join(out, 'preload/index.cjs'), 'utf8');
      const required = [...preload.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]);
      expect([...new Set(required)]).toEqual(['electron']);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
