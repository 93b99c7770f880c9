// What the agent knows about connecting to one kind of resource once its tunnel is open: which files the client
// reads (written 0600 in the grant's folder of the agent's data dir, wiped with the grant), the command the user
// copies (no secret in it), the URI for GUI clients, and how a terminal opens the client. One module per kind in
// this folder, listed in index.ts; the tunnel and the grant's life are the same for every kind (local-access.ts).
import type { Launcher, PsqlTarget } from '../agent';
import type { ClientFiles } from '../client-files';
import type { Connection } from '../../../shared/contract/http';

/**
 * What the grant itself says about reaching its target, for a kind whose client goes its own way rather than
 * through the tunnel (an SSH host: `ssh` with ProxyJump through the bastion, with the grant's key).
 */
export interface GrantRoute {
  resourceId: string;
  bastion: Connection['bastion'];
  target: Connection['target'];
  /** The grant's private key (OpenSSH format); written only by a kind that needs it on disk. */
  privateKey: Buffer;
}

/** Where the client connects: the tunnel's local end and the grant's user. */
export interface ClientTarget { host: string; port: number; database: string; user: string }

/** The grant's client files once written: what the user pastes, and their paths for `stint connect --exec`. */
export interface WrittenClientFiles {
  /** The command that connects with the files, as the user would paste it (no secret in it). */
  command: string;
  /** Variables naming the files, added to execEnv's for `stint connect --exec` (STINT_MYCNF, STINT_SSH_CONFIG…). */
  env: Record<string, string>;
}

export interface ClientKind {
  /** Write the grant's client files; return the command that connects with them and the variables naming them. */
  writeClientFiles(files: ClientFiles, grantId: string, target: ClientTarget & { password: string }, route: GrantRoute): Promise<WrittenClientFiles>;
  /**
   * The environment `stint connect --exec` runs its command with, without the files (a headless agent writes none):
   * the variables this kind's client reads. It may hold the password (a child's environment only, never the state).
   */
  execEnv(target: ClientTarget & { password: string }): Record<string, string>;
  /** The connection URI for GUI clients; it holds the password (the vault keeps it). */
  uri(target: ClientTarget & { password: string }): string;
  /** Open the client in a terminal; `command` is the one writeClientFiles returned, when the files could be written. */
  open(launcher: Launcher, target: PsqlTarget, command: string | undefined): Promise<void>;
}
