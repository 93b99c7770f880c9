// Opening a client in the user's own terminal: psql for PostgreSQL (below), or any client command that reads the
// grant's own files and so holds no secret (openCommand, for the other kinds). For psql, the password goes
// in the PGPASSWORD environment variable, never on a command line (where `ps` shows it to every local user).
// macOS's Terminal is started by LaunchServices and does not inherit our environment, so there a one-shot script
// reads the password from a 0600 file in a 0700 directory and deletes the file before starting psql.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { existsSync } from 'node:fs';
import type { Launcher, PsqlTarget } from './agent';
import { AgentError } from './errors';

export interface LaunchCommand {
  command: string;
  args: string[];
  /** Added to the launching process's environment. */
  env: Record<string, string>;
  /** Windows: pass the arguments to cmd.exe as they are (already quoted). */
  verbatim?: boolean;
}

const WINDOWS_SAFE = /^[A-Za-z0-9_.:@\\/ -]+$/;

/** psql's arguments: everything but the password. */
export function psqlArgs(target: Pick<PsqlTarget, 'host' | 'port' | 'user' | 'database'>): string[] {
  return ['-h', target.host, '-p', String(target.port), '-U', target.user, '-d', target.database];
}

/** Terminals tried on Linux, in order: the distribution's choice, then common ones. */
export const LINUX_TERMINALS: Array<{ command: string; exec: string[] }> = [
  { command: 'x-terminal-emulator', exec: ['-e'] },
  { command: 'gnome-terminal', exec: ['--'] },
  { command: 'konsole', exec: ['-e'] },
  { command: 'xfce4-terminal', exec: ['-x'] },
  { command: 'xterm', exec: ['-e'] },
];

export type LaunchPlan =
  | { ok: true; command: LaunchCommand }
  | { ok: false; reason: string };

/**
 * The command that opens psql in a terminal, per OS. Pure: `available` says which programs exist, `macScript` is the
 * path of the script written for macOS (see writeMacScript).
 */
export function psqlLaunchPlan(
  platform: NodeJS.Platform,
  target: PsqlTarget,
  opts: { available: (command: string) => boolean; macScript?: string; psql?: string },
): LaunchPlan {
  const psql = opts.psql ?? 'psql';
  const env = { PGPASSWORD: target.password };
  if (platform === 'darwin') {
    if (!opts.macScript) return { ok: false, reason: 'no script' };
    // The script carries no password (it reads and deletes the secret file): env is not passed through `open`.
    return { ok: true, command: { command: 'open', args: ['-a', 'Terminal', opts.macScript], env: {} } };
  }
  if (platform === 'win32') {
    // `start` opens a new console that inherits this environment; its first quoted argument is the window title.
    // cmd.exe parses the line itself, so it is passed verbatim and only plain arguments are allowed on it.
    const args = [psql, ...psqlArgs(target)];
    if (!args.every((a) => WINDOWS_SAFE.test(a))) return { ok: false, reason: 'The database name or user has characters the Windows console cannot take safely. Copy the connection URI instead.' };
    return { ok: true, command: { command: 'cmd.exe', args: ['/d', '/c', 'start', '"Stint"', 'cmd', '/k', ...args.map((a) => (a.includes(' ') ? `"${a}"` : a))], env, verbatim: true } };
  }
  const terminal = LINUX_TERMINALS.find((t) => opts.available(t.command));
  if (!terminal) return { ok: false, reason: `No terminal found (tried ${LINUX_TERMINALS.map((t) => t.command).join(', ')}). Copy the connection URI instead.` };
  return { ok: true, command: { command: terminal.command, args: [...terminal.exec, psql, ...psqlArgs(target)], env } };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * macOS: a `.command` script in a fresh 0700 directory, with the password in a 0600 file next to it. The script
 * reads the password into PGPASSWORD, deletes the file and its directory, then runs psql — so the secret is on disk
 * only until Terminal starts the script.
 */
export async function writeMacScript(target: PsqlTarget, opts: { dir?: string; psql?: string } = {}): Promise<{ script: string; dir: string }> {
  const dir = await mkdtemp(join(opts.dir ?? tmpdir(), 'stint-psql-'));
  await chmod(dir, 0o700);
  const secret = join(dir, 'secret');
  const script = join(dir, 'psql.command');
  await writeFile(secret, target.password, { mode: 0o600 });
  const body = [
    '#!/bin/sh',
    `PGPASSWORD="$(cat ${shellQuote(secret)})"`,
    'export PGPASSWORD',
    `rm -rf ${shellQuote(dir)}`,
    `exec ${shellQuote(opts.psql ?? 'psql')} ${psqlArgs(target).map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
  await writeFile(script, body, { mode: 0o700 });
  return { script, dir };
}

/**
 * The command that opens a terminal running `command`, a POSIX shell line holding no secret (see agent/core/kinds):
 * on macOS through a one-line `.command` script, on Linux through the first terminal found. Windows consoles do not
 * speak POSIX quoting: there the user copies the command instead.
 */
export function shellLaunchPlan(platform: NodeJS.Platform, command: string, opts: { available: (command: string) => boolean; macScript?: string }): LaunchPlan {
  if (platform === 'darwin') {
    if (!opts.macScript) return { ok: false, reason: 'no script' };
    return { ok: true, command: { command: 'open', args: ['-a', 'Terminal', opts.macScript], env: {} } };
  }
  if (platform === 'win32') return { ok: false, reason: 'The Windows console cannot run this command as it is. Copy it into a POSIX shell (WSL, Git Bash), or copy the connection URI instead.' };
  const terminal = LINUX_TERMINALS.find((t) => opts.available(t.command));
  if (!terminal) return { ok: false, reason: `No terminal found (tried ${LINUX_TERMINALS.map((t) => t.command).join(', ')}). Copy the connection URI instead.` };
  return { ok: true, command: { command: terminal.command, args: [...terminal.exec, '/bin/sh', '-c', command], env: {} } };
}

async function spawnDetached(plan: LaunchCommand, onError: () => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(plan.command, plan.args, {
      env: { ...process.env, ...plan.env },
      detached: true,
      stdio: 'ignore',
      windowsVerbatimArguments: plan.verbatim ?? false,
    });
    child.once('error', (error) => {
      onError();
      reject(new AgentError('launcher_failed', `Could not open a terminal (${plan.command}). Copy the connection URI instead.`, error));
    });
    child.once('spawn', () => { child.unref(); resolve(); });
  });
}

export function onPath(command: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

/** The Launcher the agent calls (agent/core/agent.ts). */
export function terminalLauncher(platform: NodeJS.Platform = process.platform): Launcher {
  return {
    async openPsql(target) {
      const mac = platform === 'darwin' ? await writeMacScript(target) : undefined;
      const plan = psqlLaunchPlan(platform, target, { available: (c) => onPath(c), ...(mac ? { macScript: mac.script } : {}) });
      if (!plan.ok) throw new AgentError('launcher_failed', plan.reason);
      await spawnDetached(plan.command, () => { if (mac) void rm(mac.dir, { recursive: true, force: true }); });
    },
    async openCommand(command) {
      let macDir: string | undefined;
      let macScript: string | undefined;
      if (platform === 'darwin') {
        macDir = await mkdtemp(join(tmpdir(), 'stint-client-'));
        macScript = join(macDir, 'client.command');
        await writeFile(macScript, `#!/bin/sh\nrm -rf ${shellQuote(macDir)}\nexec /bin/sh -c ${shellQuote(command)}\n`, { mode: 0o700 });
      }
      const plan = shellLaunchPlan(platform, command, { available: (c) => onPath(c), ...(macScript ? { macScript } : {}) });
      if (!plan.ok) throw new AgentError('launcher_failed', plan.reason);
      await spawnDetached(plan.command, () => { if (macDir) void rm(macDir, { recursive: true, force: true }); });
    },
  };
}
