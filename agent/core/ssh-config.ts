// A grant on an SSH target host (issue #23) is used with the real `ssh`: the agent writes, per grant, an ssh_config
// snippet (a Host alias that jumps through the bastion), the grant's private key (0600) and a known_hosts file that
// pins the host keys of the bastion AND the target from the server's config — so `ssh -F <snippet> <alias>` works as
// printed, trusts no other host key, and reads none of the user's own ssh settings that could weaken that. All three
// files live in the grant's folder of ClientFiles and are wiped with the grant.
import type { ClientFiles } from './client-files';

export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
  /** Pinned host key lines (`ssh-ed25519 AAAA…`). */
  hostKeys: string[];
}

export interface SshConfigInput {
  /** The name the user types: `ssh -F <snippet> <alias>`. */
  alias: string;
  bastion: SshEndpoint;
  /** The target host; `user` is the login the grant's level names first. */
  target: SshEndpoint;
  identityFile: string;
  knownHostsFile: string;
  /** A comment line at the top (what the grant is, until when). */
  comment?: string;
}

/** An alias ssh and a shell both take as it is: letters, digits and . _ - only. */
export function sshAlias(resourceId: string): string {
  return `stint-${resourceId.replace(/[^A-Za-z0-9._-]/g, '-')}`;
}

/** An ssh_config argument: double-quoted when it holds a space (ssh_config has no escapes; `"` is refused). */
function configArg(value: string): string {
  if (/["\n\r]/.test(value)) throw new Error(`cannot write ${JSON.stringify(value)} into an ssh_config`);
  return /[\s#]/.test(value) ? `"${value}"` : value;
}

/** Settings both hosts share: this grant's key only, the pinned keys only, nothing forwarded. */
function pinned(input: SshConfigInput, hostKeyAlias: string): string[] {
  return [
    `  HostKeyAlias ${hostKeyAlias}`,
    `  IdentityFile ${configArg(input.identityFile)}`,
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    `  UserKnownHostsFile ${configArg(input.knownHostsFile)}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
    '  CheckHostIP no',
    '  PasswordAuthentication no',
    '  KbdInteractiveAuthentication no',
    '  ForwardAgent no',
    '  ForwardX11 no',
  ];
}

/** The snippet and the known_hosts text for one grant. */
export function sshConfigFiles(input: SshConfigInput): { config: string; knownHosts: string } {
  const jump = `${input.alias}-bastion`;
  const config = [
    ...(input.comment ? [`# ${input.comment.replace(/[\r\n]+/g, ' ')}`] : []),
    `Host ${input.alias}`,
    `  HostName ${configArg(input.target.host)}`,
    `  Port ${input.target.port}`,
    `  User ${configArg(input.target.user)}`,
    `  ProxyJump ${jump}`,
    ...pinned(input, input.alias),
    '',
    `Host ${jump}`,
    `  HostName ${configArg(input.bastion.host)}`,
    `  Port ${input.bastion.port}`,
    `  User ${configArg(input.bastion.user)}`,
    ...pinned(input, jump),
    '',
  ].join('\n');
  // Entries under the HostKeyAlias names: the check never depends on how the host's address is written.
  const keyPart = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = [
    ...input.target.hostKeys.map((k) => `${input.alias} ${keyPart(k)}`),
    ...input.bastion.hostKeys.map((k) => `${jump} ${keyPart(k)}`),
    '',
  ].join('\n');
  return { config, knownHosts };
}

const shellQuote = (s: string) => (/^[A-Za-z0-9_./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** What the UI copies and the CLI prints: works as it is in any POSIX shell. */
export function sshCommand(configFile: string, alias: string): string {
  return `ssh -F ${shellQuote(configFile)} ${alias}`;
}

/**
 * Write a grant's ssh files (0600 each: ssh refuses a key or config others can read): the private key, the pinned
 * known_hosts and the snippet. Returns the snippet's path and the exact command that uses it.
 */
export async function writeSshFiles(files: ClientFiles, grantId: string, input: Omit<SshConfigInput, 'identityFile' | 'knownHostsFile'> & { privateKey: string }): Promise<{ configFile: string; command: string }> {
  const identityFile = await files.write(grantId, 'id_ed25519', input.privateKey.endsWith('\n') ? input.privateKey : `${input.privateKey}\n`);
  // Paths first (the snippet names them), then the files' content.
  const knownHostsFile = await files.write(grantId, 'known_hosts', '');
  const { config, knownHosts } = sshConfigFiles({ ...input, identityFile, knownHostsFile });
  await files.write(grantId, 'known_hosts', knownHosts);
  const configFile = await files.write(grantId, 'ssh_config', config);
  return { configFile, command: sshCommand(configFile, input.alias) };
}
