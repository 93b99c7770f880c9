// SSH target hosts (issue #23): the real `ssh`, through the bastion with ProxyJump, with the grant's key and both
// hosts' keys pinned — the files (key, known_hosts, ssh_config snippet) are written per grant and wiped with it
// (../ssh-config.ts), and the command to run is `ssh -F <snippet> stint-<resource>`. The grant's tunnel reaches the
// host's sshd too (for an SFTP client: the URI below, with the same key file). "Open" runs the command in a terminal.
import { AgentError } from '../errors';
import { sshAlias, writeSshFiles } from '../ssh-config';
import type { ClientKind } from './kind';

export const sshClient: ClientKind = {
  async writeClientFiles(files, grantId, target, route) {
    const hostKeys = route.target.hostKeys;
    // An SSH host's keys come with the grant; without them there is nothing to pin, and ssh would ask the user.
    if (!hostKeys?.length) throw new AgentError('tunnel_failed', 'The server sent no host keys for this SSH host; it cannot be connected to safely.');
    const alias = sshAlias(route.resourceId);
    const { command, configFile } = await writeSshFiles(files, grantId, {
      alias,
      privateKey: route.privateKey.toString('utf8'),
      bastion: route.bastion,
      target: { host: route.target.host, port: route.target.port, user: target.user, hostKeys },
      comment: `Stint grant ${grantId} on ${route.resourceId}: removed when the grant ends.`,
    });
    // `ssh -F "$STINT_SSH_CONFIG" "$STINT_SSH_HOST" CMD` (scp and rsync -e take the same -F): the key is a file.
    return { command, env: { STINT_SSH_CONFIG: configFile, STINT_SSH_HOST: alias } };
  },
  // Nothing without the files: the key, the pinned host keys and the jump are all in them.
  execEnv: () => ({}),
  uri: (t) => `ssh://${encodeURIComponent(t.user)}@${t.host}:${t.port}`,
  async open(launcher, _target, command) {
    if (!command) throw new AgentError('launcher_failed', 'The ssh files could not be written; end this access and request it again.');
    // The command holds no secret (the key is a file), so it can run in the user's terminal as it is; where no
    // terminal can be opened, the caller says to run it in one.
    if (!launcher.openCommand) throw new AgentError('launcher_failed', 'This Stint host cannot open ssh in a terminal.');
    await launcher.openCommand(command);
  },
};
