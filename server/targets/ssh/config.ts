// An SSH target host in the config (issue #23): the host's sshd as the bastion reaches it, its pinned host keys (the
// agent's ssh trusts no other), the token its key program and companion present, and the logins each access level
// opens there. Logins are checked on the host at every login (server/bastion/key-routes.ts): a grant's key opens only
// the logins of its level.
import { z } from 'zod';
import { Port, SecretRef } from '../../config-base';
import { LevelName, resourceBase } from '../resource-base';

const HOST_KEYS_NEEDED = 'the host\'s keys (ssh-keyscan -t ed25519 <host> prints them): agents never trust a host key blind';
/** A login name as useradd takes it (and as nothing in a key line or ssh_config can be broken by). */
const Login = z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, 'a login name like deploy (lower case, digits, _ . -)');

export const SshResource = z.strictObject({
  ...resourceBase,
  // Its sessions are kept under `host/<id>` (server/bastion/sessions.ts), in a column of 128 characters.
  id: resourceBase.id.max(123, 'at most 123 characters for an SSH host'),
  kind: z.literal('ssh'),
  target: z.strictObject({
    host: z.string().min(1),
    port: Port.default(22),
    hostKeys: z.array(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}( .*)?$/, 'an OpenSSH public key line, e.g. ssh-ed25519 AAAA…'), { error: HOST_KEYS_NEEDED })
      .min(1, HOST_KEYS_NEEDED),
  }),
  /** What this host's key program and kill companion present to /v1/bastion (as a bastion's token). */
  token: SecretRef,
  levels: z.record(LevelName, z.array(Login).min(1, 'at least one login'))
    .refine((levels) => Object.keys(levels).length > 0, 'at least one access level'),
});
export type SshResource = z.output<typeof SshResource>;
