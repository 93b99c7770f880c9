// Everything an agent talks to, for real, on loopback: PostgreSQL (the database a grant opens), a Secret Service (the
// keychain), the dev IdP, the OpenSSH bastion asking Stint's key command, and the grant server itself in-process on
// a catalog the caller chooses (SQLite in memory, a real PostgreSQL role per grant). The agent tests and the agent
// benchmarks run on it; the journeys run the demo's whole stack instead (test/harness/stack.ts).
// Each caller picks its own catalog because what it needs from the server's policy differs (approved at once,
// approved by a DBA later, extended without re-approval, forty resources for the UI), and a fresh server per catalog
// starts in milliseconds, so a test can have one of its own.
import { resolve } from 'node:path';
import type { ServerConfigInput } from '../server/config';
import { createPostgresProvider } from '../server/targets/postgres/provider';
import type { Clock } from '../shared/domain/clock';
import type { SecretStore } from '../agent/core/secrets/secret-store';
import { Session } from '../agent/core/session';
import { startPostgres, type PostgresInstance } from './postgres';
import { stopList } from './process';
import { startKeyring, type KeyringInstance } from './keyring';
import { startSshd, type SshdInstance } from './sshd';
import { installKeysCommand } from './keys-command';
import { startIdp, devBrowser, type IdpInstance } from './idp';
import { BASTION_TOKEN, startGrantServer, testConfig, type RunningGrantServer } from './grant-server';
import { freePort } from './ports';

export interface CatalogResource {
  id: string;
  /** A key of the catalog's `policies`. */
  policy: string;
  name?: string;
  environment?: string;
  sensitivity?: 'low' | 'medium' | 'high';
}

export interface Catalog {
  resources: CatalogResource[];
  policies: ServerConfigInput['policies'];
}

export interface BackendServer extends RunningGrantServer {
  /** Stop at once, as a crashed or unreachable server would: open event streams and keep-alive connections are cut. */
  kill: () => Promise<void>;
}

export interface AgentBackend {
  pg: PostgresInstance;
  keyring: KeyringInstance;
  idp: IdpInstance;
  sshd: SshdInstance;
  /** A grant server on this catalog; from now on the bastion's key command asks it (one server at a time). */
  startServer: (catalog: Catalog) => Promise<BackendServer>;
  /**
   * The real OIDC session of the agent (agent/core/session.ts) for a demo user: sign-in runs the authorization code
   * flow on the IdP's pages (devBrowser stands in for the person at the browser); the refresh token goes to `secrets`.
   */
  session: (user: string, options: { secrets: SecretStore; clock?: Clock }) => Session;
  stop: () => Promise<void>;
}

/** What a grant's role may do, by level: each resource is the one harness database. */
const LEVELS = {
  read: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{role}}'],
  write: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}', 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{role}}'],
};

export async function startAgentBackend(): Promise<AgentBackend> {
  const { stops, stopAll } = stopList();
  try {
    const [pg, keyring, idp] = await Promise.all([startPostgres(), startKeyring(), startIdp()]);
    stops.push(() => keyring.stop(), () => pg.stop(), () => idp.close());
    // keytar reaches the Secret Service through these, read at its first call.
    Object.assign(process.env, keyring.env);
    const keys = installKeysCommand(resolve(import.meta.dirname, '../server/bastion/authorized-keys.sh'));
    stops.push(() => keys.remove());
    const sshd = await startSshd({ permitOpen: [`127.0.0.1:${pg.port}`], authorizedKeysCommand: { command: keys.command } });
    stops.push(() => sshd.stop());

    const servers = new Set<BackendServer>();
    stops.push(() => Promise.all([...servers].map((s) => s.kill())));
    const startServer = async (catalog: Catalog): Promise<BackendServer> => {
      const port = await freePort();
      const resources = catalog.resources.map((r) => ({
        id: r.id, name: r.name ?? r.id, environment: r.environment ?? 'production', sensitivity: r.sensitivity ?? 'high', kind: 'postgres' as const,
        bastion: 'main', target: { host: '127.0.0.1', port: pg.port, database: pg.database }, admin: { url: pg.adminUrl() }, levels: LEVELS, policy: r.policy,
      }));
      // The catalog replaces the test catalog's resources and policies whole (a merge would mix policies of one name).
      const config: ServerConfigInput = {
        ...testConfig(idp, 'sqlite::memory:', port),
        bastions: { main: { host: sshd.host, port: sshd.port, user: sshd.user, token: BASTION_TOKEN, hostKeys: [sshd.hostKeyLine] } },
        resources,
        policies: catalog.policies,
      };
      const credentials = createPostgresProvider({
        resources: Object.fromEntries(resources.map((r) => [r.id, { adminUrl: pg.adminUrl(), database: pg.database, levels: LEVELS }])),
      });
      const running = await startGrantServer({ idp, config, port, credentials });
      keys.writeConfig({ STINT_SERVER_URL: running.url, STINT_BASTION_TOKEN: BASTION_TOKEN });
      let closing: Promise<void> | undefined;
      const server: BackendServer = {
        ...running,
        kill: () => {
          closing ??= (async () => {
            // As a crash would: every connection (event streams, keep-alive) is cut before the server says anything,
            // and again once it has stopped listening, since a graceful close waits for open ones.
            running.app.server.closeAllConnections();
            const closed = running.close();
            running.app.server.closeAllConnections();
            await closed;
            servers.delete(server);
          })();
          return closing;
        },
      };
      servers.add(server);
      return server;
    };

    return {
      pg, keyring, idp, sshd, startServer,
      session: (user, options) => new Session({
        issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, secrets: options.secrets,
        openUrl: devBrowser(user, idp.issuer), ...(options.clock ? { clock: options.clock } : {}),
      }),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
