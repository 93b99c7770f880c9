// SSH target hosts as a resource kind (issue #23): the config schema, the provider (provider.ts: a banner check at
// activation, the host's companion confirming the end) and the host as a node of /v1/bastion with its own token —
// its sshd runs the bastion's key program, its companion the bastion's companion (server/bastion/).
import { requireSecret } from '../../config-base';
import { hostNodeId } from '../../bastion/nodes';
import type { TargetKind } from '../kind';
import type { SshResource } from './config';
import { createSshHostProvider } from './provider';

export const sshKind: TargetKind<SshResource> = {
  kind: 'ssh',
  secretRefs: (resource, where) => [{ where: `${where}.token`, ref: resource.token }],
  connectionTarget: (r) => ({ host: r.target.host, port: r.target.port, database: '', hostKeys: r.target.hostKeys }),
  database: () => '',
  provider: (resources, _env, { sessions }) => {
    if (!sessions) throw new Error('SSH hosts need the server\'s session store (their ends wait for the host\'s report there)');
    return createSshHostProvider({
      hosts: Object.fromEntries(resources.map(({ resource: r }) => [r.id, { host: r.target.host, port: r.target.port, logins: r.levels }])),
      openSessions: async (resourceId, grantId) => (await sessions.pidsFor(hostNodeId(resourceId), [grantId])).get(grantId)?.length ?? 0,
    });
  },
  nodes: (r, where, env) => ({
    [hostNodeId(r.id)]: {
      token: requireSecret(r.token, `${where}.token`, env),
      // sshd asks only for these accounts' keys; which of them a grant opens is its level's list.
      users: [...new Set(Object.values(r.levels).flat())],
      host: { resourceId: r.id, logins: r.levels },
    },
  }),
};
