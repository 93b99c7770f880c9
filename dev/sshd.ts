// OpenSSH sshd as the bastion: its own config, host key and pid file in a temp dir, on a free loopback port.
// No PAM, no passwords, no TTY; forwarding allowed only to the targets given (PermitOpen).
// Keys come from an AuthorizedKeysFile in the temp dir, or from an AuthorizedKeysCommand (credentials issue).
// startTargetSshd: a second sshd as an SSH target host (issue #23), reached through the bastion: shells and commands
// for its login users, a TTY allowed, no forwarding of any kind; keys from Stint's key command only.
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import { serviceDir, waitFor } from './run-dir';
import { freePort } from './ports';
import { mustRun, startProcess } from './process';

export const BASTION_USER = process.env.STINT_BASTION_USER ?? 'stintbastion';
/** The login on the dev SSH target host (created by build/prereqs.sh). */
export const TARGET_USER = process.env.STINT_TARGET_USER ?? 'stinttarget';
const SSHD = '/usr/sbin/sshd';

export interface SshdInstance {
  host: string;
  port: number;
  user: string;
  dir: string;
  hostKeyLine: string;
  authorizedKeysFile: string;
  /** Replace the static authorized keys (one OpenSSH key line each, options allowed). */
  setAuthorizedKeys: (lines: string[]) => void;
  output: () => string;
  stop: () => Promise<void>;
  /**
   * Stop the bastion with `signal` (its whole process group: the listener and every connection's process, as when
   * the host goes down) and start it again on the same port, host key and config.
   */
  restart: (signal?: NodeJS.Signals) => Promise<void>;
}

export interface SshdOptions {
  permitOpen: string[];
  authorizedKeysCommand?: { command: string; user?: string };
  extraConfig?: string[];
  /** Default: a free port. */
  port?: number;
}

export async function startSshd(options: SshdOptions): Promise<SshdInstance> {
  return runSshd('sshd', BASTION_USER, options.port, options.authorizedKeysCommand, [
    `AllowUsers ${BASTION_USER}`,
    'AllowTcpForwarding local',
    'PermitTTY no',
    `PermitOpen ${options.permitOpen.join(' ')}`,
    ...(options.extraConfig ?? []),
  ]);
}

export interface TargetSshdOptions {
  /** Stint's key command on this host (its own token): the only source of keys. */
  authorizedKeysCommand: { command: string; user?: string };
  /**
   * Accounts sshd itself lets in (default: the target login and the bastion user, so that a test can show the key
   * command, not sshd, refusing a login the grant's level does not name). Never root.
   */
  allowUsers?: string[];
  port?: number;
}

/** A second sshd as an SSH target host: logins with a shell and a TTY, no forwarding, keys only from the key command. */
export async function startTargetSshd(options: TargetSshdOptions): Promise<SshdInstance> {
  const users = options.allowUsers ?? [TARGET_USER, BASTION_USER];
  return runSshd('target-sshd', TARGET_USER, options.port, options.authorizedKeysCommand, [
    `AllowUsers ${users.join(' ')}`,
    'PermitRootLogin no',
    'AllowTcpForwarding no',
    'AllowStreamLocalForwarding no',
    'PermitTTY yes',
    'PermitUserRC no',
  ], users);
}

async function runSshd(name: string, user: string, fixedPort: number | undefined, command: SshdOptions['authorizedKeysCommand'], roleConfig: string[], logins: string[] = [user]): Promise<SshdInstance> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: run \`npm run test:all\` (or build/prereqs.sh) to install openssh-server`);
  for (const login of logins) {
    try {
      execFileSync('id', ['-u', login]);
    } catch {
      throw new Error(`the login ${login} does not exist: run build/prereqs.sh (it creates it)`);
    }
  }
  const dir = serviceDir(name);
  const hostKey = join(dir, 'host_ed25519');
  await mustRun('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const authorizedKeysFile = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeysFile, '', { mode: 0o644 });
  const port = fixedPort ?? await freePort();
  const keys = command
    ? [`AuthorizedKeysCommand ${command.command}`, `AuthorizedKeysCommandUser ${command.user ?? 'nobody'}`, 'AuthorizedKeysFile none']
    : [`AuthorizedKeysFile ${authorizedKeysFile}`];
  const config = [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'StrictModes no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTunnel no',
    'GatewayPorts no',
    'LogLevel VERBOSE',
    'MaxStartups 100:30:200',
    'MaxSessions 50',
    ...keys,
    ...roleConfig,
  ].join('\n');
  const configFile = join(dir, 'sshd_config');
  writeFileSync(configFile, `${config}\n`);
  await mkdirRunSshd();
  await mustRun(SSHD, ['-t', '-f', configFile]);
  let proc = startProcess(SSHD, ['-D', '-e', '-f', configFile], { cwd: dir });
  const listening = () => waitFor('sshd to listen', () => new Promise<boolean>((resolve, reject) => {
    if (proc.child.exitCode !== null) return reject(new Error(`sshd exited: ${proc.output()}`));
    const socket = connect(port, '127.0.0.1');
    socket.once('data', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  }));
  await listening();
  const hostKeyLine = (await mustRun('cat', [`${hostKey}.pub`])).trim();
  return {
    host: '127.0.0.1', port, user, dir, hostKeyLine, authorizedKeysFile,
    setAuthorizedKeys: (lines) => writeFileSync(authorizedKeysFile, lines.map((l) => `${l}\n`).join('')),
    output: () => proc.output(),
    stop: () => proc.stop(),
    restart: async (signal = 'SIGTERM') => {
      await proc.stop(signal);
      proc = startProcess(SSHD, ['-D', '-e', '-f', configFile], { cwd: dir });
      await listening();
    },
  };
}

async function mkdirRunSshd(): Promise<void> {
  // sshd insists on its privilege-separation directory.
  if (!existsSync('/run/sshd')) await mustRun('mkdir', ['-p', '/run/sshd']);
}
