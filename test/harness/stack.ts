// The whole product on loopback for journeys and fault tests: the dev IdP, PostgreSQL with the demo databases, the
// grant server with the demo config (the same one `npm start` uses) and its production effects (PostgreSQL roles,
// WebAuthn/TOTP step-up), an OpenSSH bastion with the key command and kill companion, a second sshd as the SSH
// target host (issue #23) with the same key program and companion under its own token, a Secret Service, and agents
// that sign in as demo users by driving the IdP's pages.
import { resolve } from 'node:path';
import { buildServer, type GrantServer } from '../../server/app';
import { parseConfig, type ServerConfig } from '../../server/config';
import { productionEffects } from '../../server/main';
import { startCompanion, type Companion } from '../../server/bastion/companion';
import { createAgent } from '../../agent/core/compose';
import type { Agent } from '../../agent/core/agent';
import type { Clock } from '../../shared/domain/clock';
import { MemorySettingsStore } from '../../agent/core/settings';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { startWebHost, type WebHost } from '../../agent/web/host';
import { demoConfigYaml, DEMO_MARIADB_SQL, DEMO_SQL } from '../../scripts/demo-config';
import { startIdp, driveDevInteractions, type IdpInstance } from '../../dev/idp';
import { startPostgres, type PostgresInstance } from '../../dev/postgres';
import { startMariadb, type MariadbInstance } from '../../dev/mariadb';
import { startSshd, startTargetSshd, type SshdInstance } from '../../dev/sshd';
import { startKeyring, type KeyringInstance } from '../../dev/keyring';
import { installKeysCommand, type InstalledKeysCommand } from '../../dev/keys-command';
import { freePort } from '../../dev/ports';
import { serviceDir } from '../../dev/run-dir';

export interface StackAgent {
  agent: Agent;
  clipboard: MemoryClipboard;
  settings: MemorySettingsStore;
  /** Sign in through the IdP's pages as this demo user. */
  signIn: () => Promise<void>;
}

export interface Stack {
  idp: IdpInstance;
  pg: PostgresInstance;
  /** With `mariadb: true`: the demo's MariaDB (database shop), behind the bastion like PostgreSQL. */
  mariadb?: MariadbInstance;
  sshd: SshdInstance;
  /** The SSH target host (resource staging-web), reached through the bastion. */
  target: SshdInstance;
  /** The target host's kill companion: stopped, the host cannot confirm a grant's end (as when it is unreachable). */
  hostCompanion: { stop: () => Promise<void>; start: () => Promise<void> };
  keyring: KeyringInstance;
  config: ServerConfig;
  serverUrl: string;
  /** The bearer tokens the bastion's and the target host's key program and companion present to /v1/bastion. */
  nodeTokens: { bastion: string; host: string };
  ports: { server: number; web: number; sshd: number; pg: number; mariadb: number };
  server: () => GrantServer;
  /** Stop the grant server (the agent's network to it is gone); `startServer` brings it back on the same port and data. */
  stopServer: () => Promise<void>;
  startServer: () => Promise<void>;
  /**
   * dataDir: the agent's own folder (per-grant psql passfiles; its local socket when a test listens on it). deviceId:
   * the device it runs on (default: a new one), e.g. the same as an agent that crashed, for its restart.
   */
  agent: (user: string, options?: { clock?: Clock; fetch?: typeof fetch; dataDir?: string; deviceId?: string }) => StackAgent;
  webHost: (agent: Agent) => Promise<WebHost>;
  stop: () => Promise<void>;
}

export interface StackOptions {
  serverClock?: Clock;
  /** Change the demo config before the server starts (e.g. shorter durations). */
  editConfig?: (yaml: string) => string;
  /** Start MariaDB for the demo's MariaDB resource too (else it is listed but its database is unreachable). */
  mariadb?: boolean;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const stops: Array<() => Promise<unknown> | unknown> = [];
  try {
    const [idp, pg, keyring] = await Promise.all([startIdp(), startPostgres({ database: 'orders' }), startKeyring()]);
    stops.push(() => idp.close(), () => pg.stop(), () => keyring.stop());
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    await pg.query('create database users', [], 'postgres');
    for (const db of ['orders', 'users']) await pg.query(DEMO_SQL[db]!, [], db);

    const mariadb = options.mariadb ? await startMariadb({ database: 'shop' }) : undefined;
    if (mariadb) {
      stops.push(() => mariadb.stop());
      await mariadb.query(DEMO_MARIADB_SQL);
    }
    const ports = { server: await freePort(), web: await freePort(), sshd: await freePort(), pg: pg.port, mariadb: mariadb?.port ?? await freePort() };
    const serverUrl = `http://localhost:${ports.server}`;
    const dir = serviceDir('stack');
    const bastionToken = 'stack-bastion-token-0123456789abcdef';
    const hostToken = 'stack-host-token-0123456789abcdef';
    // The bastion first: its host key goes into the config, which agents pin.
    const keys: InstalledKeysCommand = installKeysCommand(resolve('server/bastion/authorized-keys.sh'));
    stops.push(() => keys.remove());
    keys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: bastionToken });
    // The SSH target host: the same key program, its own copy and token.
    const hostKeys: InstalledKeysCommand = installKeysCommand(resolve('server/bastion/authorized-keys.sh'));
    stops.push(() => hostKeys.remove());
    hostKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: hostToken });
    const target = await startTargetSshd({ authorizedKeysCommand: { command: hostKeys.command } });
    stops.push(() => target.stop());
    const sshd = await startSshd({ port: ports.sshd, permitOpen: [`127.0.0.1:${pg.port}`, `127.0.0.1:${target.port}`, ...(mariadb ? [`127.0.0.1:${mariadb.port}`] : [])], authorizedKeysCommand: { command: keys.command } });
    stops.push(() => sshd.stop());
    const yaml = demoConfigYaml({ ports: { ...ports, target: target.port }, dir, audience: idp.audience, issuer: idp.issuer, bastionHostKeys: [sshd.hostKeyLine], targetHostKeys: [target.hostKeyLine] });
    const config = parseConfig(options.editConfig ? options.editConfig(yaml) : yaml, 'stack config');
    // Each stack's agents get their own preferred tunnel ports. The agent derives a resource's port from its id, so
    // stacks in parallel test files would all prefer the same port: when one tunnel closes, another file's new
    // tunnel could take that port at once, and a test checking that its ended tunnel refuses connections would
    // find someone else listening there.
    const tunnelPorts: Record<string, number> = {};
    for (const resource of config.resources) tunnelPorts[resource.id] = await freePort();
    const env = {
      ...process.env,
      STINT_DEMO_TOTP_KEY: 'k'.repeat(43),
      STINT_DEMO_BASTION_TOKEN: bastionToken,
      STINT_DEMO_HOST_TOKEN: hostToken,
      STINT_DEMO_ORDERS_ADMIN: pg.adminUrl('orders'),
      STINT_DEMO_USERS_ADMIN: pg.adminUrl('users'),
      STINT_DEMO_SHOP_ADMIN: mariadb?.adminUrl('') ?? `mysql://unavailable@127.0.0.1:${ports.mariadb}/`,
    };
    let server: GrantServer | undefined;
    const startServer = async () => {
      server = await buildServer({ config, ...productionEffects(config, env), env, ...(options.serverClock ? { clock: options.serverClock } : {}) });
      await server.app.listen({ host: '127.0.0.1', port: ports.server });
    };
    const stopServer = async () => {
      await server?.close();
      server = undefined;
    };
    await startServer();
    stops.push(stopServer);

    const companion: Companion = startCompanion({ serverUrl, token: env.STINT_DEMO_BASTION_TOKEN });
    stops.push(() => companion.stop());
    let hostCompanion: Companion | undefined = startCompanion({ serverUrl, token: hostToken });
    const hostCompanionControl = {
      stop: async () => { await hostCompanion?.stop(); hostCompanion = undefined; },
      start: async () => { hostCompanion ??= startCompanion({ serverUrl, token: hostToken }); await hostCompanion.ready; },
    };
    stops.push(() => hostCompanionControl.stop());

    const agents: Agent[] = [];
    const hosts: WebHost[] = [];
    return {
      idp, pg, ...(mariadb ? { mariadb } : {}), sshd, target, hostCompanion: hostCompanionControl, keyring, config, serverUrl, nodeTokens: { bastion: bastionToken, host: hostToken }, ports,
      server: () => {
        if (!server) throw new Error('the grant server is stopped');
        return server;
      },
      stopServer,
      startServer,
      agent: (user, agentOptions = {}) => {
        const settings = new MemorySettingsStore({ serverUrl, issuer: idp.issuer, audience: idp.audience, ports: tunnelPorts, ...(agentOptions.deviceId ? { deviceId: agentOptions.deviceId } : {}) });
        const clipboard = new MemoryClipboard();
        let signingIn = false;
        const agent = createAgent({
          settings,
          clipboard,
          ...(agentOptions.clock ? { clock: agentOptions.clock } : {}),
          ...(agentOptions.fetch ? { fetch: agentOptions.fetch } : {}),
          ...(agentOptions.dataDir ? { dataDir: agentOptions.dataDir } : {}),
          openUrl: async (url) => {
            if (!signingIn) throw new Error(`unexpected browser open: ${url}`);
            const callback = await driveDevInteractions(url, user, idp.issuer);
            await fetch(callback);
          },
        });
        agents.push(agent);
        return {
          agent, clipboard, settings,
          signIn: async () => {
            signingIn = true;
            try {
              await agent.start();
              await agent.api.signIn({});
            } finally {
              signingIn = false;
            }
          },
        };
      },
      webHost: async (agent) => {
        const host = await startWebHost({ staticDir: 'dist/renderer', agent, port: ports.web });
        hosts.push(host);
        return host;
      },
      stop: async () => {
        for (const host of hosts) await host.close().catch(() => undefined);
        for (const agent of agents) await agent.dispose().catch(() => undefined);
        for (const stop of stops.reverse()) await Promise.resolve().then(stop).catch(() => undefined);
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await Promise.resolve().then(stop).catch(() => undefined);
    throw error;
  }
}

/**
 * Edit the stack's config text for a test: each `from` must be in it (a test whose edit silently matched nothing once
 * ran on the unchanged policy and still passed).
 */
export function editConfigText(yaml: string, ...edits: Array<[from: string, to: string]>): string {
  return edits.reduce((text, [from, to]) => {
    if (!text.includes(from)) throw new Error(`config edit did not apply: "${from}" is not in the stack config`);
    return text.replace(from, to);
  }, yaml);
}
