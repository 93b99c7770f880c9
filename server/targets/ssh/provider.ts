// SSH target hosts (issue #23). A grant on a host opens nothing by itself on the host: the host's sshd asks the grant
// server for each key at login (the same key program as the bastion's, with the host's own token), and the server
// answers with a login line for the grant's key only while the grant is active and only for the logins its level
// names. So issuing is checking that the host answers (a grant on a host that is down is refused, not reported
// active), and the end is the host's kill companion confirming it ended the grant's sessions there: until it has, the
// grant stays "ending" and the end is retried, like a database that could not be reached.
import { connect } from 'node:net';
import type { CredentialProvider } from '../../credentials/provider';
import { CredentialError } from '../../credentials/errors';

export interface SshHostTarget {
  host: string;
  port: number;
  /** Access level → the logins it opens on the host (the first is the one the agent's ssh_config names). */
  logins: Record<string, string[]>;
}

export interface SshHostProviderOptions {
  hosts: Record<string, SshHostTarget>;
  /**
   * How many sessions of this grant on this host are recorded and not yet reported ended by the host's companion
   * (server/bastion/sessions.ts, node hostNodeId(resourceId)).
   */
  openSessions: (resourceId: string, grantId: string) => Promise<number>;
  /** How long the banner check at activation waits. Default 3 s. */
  probeTimeoutMs?: number;
  /** How long an end waits for the companion's report before it counts as failed (and is retried). Default 4 s. */
  confirmWithinMs?: number;
}

/** Wait for the SSH identification string (`SSH-2.0-…`): the host's sshd is up and reachable from here. */
export function probeSshBanner(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let seen = '';
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`${host}:${port} did not answer within ${timeoutMs} ms`), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      seen += chunk;
      if (seen.includes('\n') || seen.length > 255) {
        clearTimeout(timer);
        socket.destroy();
        if (seen.startsWith('SSH-2.0-') || seen.startsWith('SSH-1.99-')) resolve();
        else reject(new Error(`${host}:${port} answered, but not as an SSH server`));
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => { clearTimeout(timer); fail(`${host}:${port} cannot be reached (${error.code ?? error.message})`); });
    socket.once('close', () => { clearTimeout(timer); if (!seen.includes('\n')) reject(new Error(`${host}:${port} closed the connection before its SSH banner`)); });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createSshHostProvider(options: SshHostProviderOptions): CredentialProvider {
  const probeTimeoutMs = options.probeTimeoutMs ?? 3_000;
  const confirmWithinMs = options.confirmWithinMs ?? 4_000;
  const hostOf = (resourceId: string): SshHostTarget => {
    const host = options.hosts[resourceId];
    if (!host) throw new CredentialError('unknown_resource', `resource ${resourceId} is not an SSH host`);
    return host;
  };
  return {
    kind: 'ssh',
    async issue({ resourceId, level }) {
      const host = hostOf(resourceId);
      const login = host.logins[level]?.[0];
      if (!login) throw new CredentialError('unknown_level', `level ${level} of ${resourceId} names no login`);
      try {
        await probeSshBanner(host.host, host.port, probeTimeoutMs);
      } catch (error) {
        throw new CredentialError('unavailable', `the SSH host ${resourceId} is down: ${(error as Error).message}`, error);
      }
      // Nothing to create on the host: the key is the credential, and the host asks for it at each login. The login
      // stands where a database role would, so the grant shows whom it logs in as.
      return { username: login, password: '' };
    },
    async extend() {
      // Each login's key line carries the grant's end as it is when the key program asks: nothing to change here.
    },
    async rotate({ resourceId }) {
      // A taken-back grant has a new key (the grant's row changed it): the host already refuses the old one.
      hostOf(resourceId);
      return { password: '' };
    },
    async revoke({ grantId, resourceId }) {
      hostOf(resourceId);
      const until = Date.now() + confirmWithinMs;
      let open = await options.openSessions(resourceId, grantId);
      while (open > 0 && Date.now() < until) {
        await sleep(50);
        open = await options.openSessions(resourceId, grantId);
      }
      if (open > 0) {
        throw new CredentialError('sessions_remain', `the SSH host ${resourceId} has not confirmed that ${open} session(s) of the grant ended (is its companion running and connected?)`);
      }
    },
    async close() {},
  };
}
