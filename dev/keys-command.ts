// Installs the bastion's AuthorizedKeysCommand (server/bastion/authorized-keys.sh) where sshd accepts it.
import { mkdirSync, copyFileSync, writeFileSync, chownSync, chmodSync, rmSync, readdirSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { registerCleanupPath } from './run-dir';

export interface InstalledKeysCommand {
  dir: string;
  program: string;
  config: string;
  /** The AuthorizedKeysCommand line for sshd_config. */
  command: string;
  writeConfig: (values: Record<string, string>) => void;
  remove: () => void;
}

/**
 * sshd runs an AuthorizedKeysCommand only if it and every directory above it are root-owned and not writable by
 * group/others, so /tmp will not do: install under a fresh /usr/local/libexec/stint-dev-<random>/ (removed by
 * `remove`). The config holds the token: root-owned, readable by the command user's group only.
 */
export function installKeysCommand(source: string, commandUser = 'nobody', options: { name?: string } = {}): InstalledKeysCommand {
  const parent = '/usr/local/libexec';
  mkdirSync(parent, { recursive: true });
  // A run killed before its afterAll leaves its copy behind (the harness sweep only knows the temp root): remove
  // copies older than an hour, which no running test can still be using.
  for (const entry of readdirSync(parent)) {
    if (!entry.startsWith('stint-dev-')) continue;
    const path = join(parent, entry);
    try {
      if (Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { recursive: true, force: true });
    } catch { /* removed meanwhile */ }
  }
  // A fixed name (the demo) is reused across runs; a test's copy is fresh and swept with the run.
  const dir = join(parent, options.name ?? `stint-dev-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (!options.name) registerCleanupPath(dir);
  chownSync(dir, 0, 0);
  chmodSync(dir, 0o755);
  const program = join(dir, 'authorized-keys');
  copyFileSync(source, program);
  chownSync(program, 0, 0);
  chmodSync(program, 0o755);
  const config = join(dir, 'bastion.env');
  const gid = Number(execFileSync('id', ['-g', commandUser]).toString().trim());
  const writeConfig = (values: Record<string, string>) => {
    writeFileSync(config, Object.entries(values).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o640 });
    chownSync(config, 0, gid);
    chmodSync(config, 0o640);
  };
  writeConfig({});
  return { dir, program, config, command: `${program} -f ${config} %u %t %k`, writeConfig, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

