// One real agent (agent/core) in a process of its own, for the chaos run (dev/chaos/run.ts) to kill -9 and start
// again: its keychain is the run's Secret Service, its session the dev IdP's, its tunnels real ssh2 through the
// bastion; it runs on the real clock under libfaketime (stack.ts, dev/faketime.ts), so the run moves its wall clock
// from outside as a user or NTP would, and it notices the change as the desktop shell does (ClockChangeDetector).
// It is driven over stdin/stdout, one JSON object a line, lines on stdout prefixed with `CHAOS `.
//   in:  {"id":1,"cmd":"open","resourceId":"r0","seconds":5}   → {"id":1,"ok":true,"value":{grantId,endsAt,port,uri,key}}
//   out at start: {"ready":true,"leftovers":[…grant ids found in the keychain before start…],"after":[…left after start…]}
// `key` is the grant's SSH private key as the tunnel received it, so the run can check from outside that the key no
// longer passes the bastion after the deadline (the copy a thief would have made).
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent } from '../../agent/core/agent';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { MemorySettingsStore } from '../../agent/core/settings';
import { Session } from '../../agent/core/session';
import { openTunnel, type TunnelOptions } from '../../agent/core/tunnels';
import { GRANT_ACCOUNT_PREFIX } from '../../agent/core/vault';
import { ClockChangeDetector } from '../../desktop/main/power';
import { systemClock } from '../../shared/domain/clock';
import { devBrowser } from '../idp';

export interface ChaosAgentConfig {
  serverUrl: string;
  /** The keychain service of this agent: the same after every restart (its session and its grants' items). */
  service: string;
  deviceId: string;
  user: string;
  idp: { issuer: string; clientId: string; audience: string };
  ports: Record<string, number>;
}

export const CHAOS_AGENT_ENV = 'STINT_CHAOS_AGENT';
export const LINE_PREFIX = 'CHAOS ';

const send = (message: unknown) => process.stdout.write(`${LINE_PREFIX}${JSON.stringify(message)}\n`);

async function main(): Promise<void> {
  const config = JSON.parse(process.env[CHAOS_AGENT_ENV] ?? '') as ChaosAgentConfig;
  const secrets = new KeytarSecretStore(config.service);
  const grantItems = async () => (await secrets.list()).filter((a) => a.startsWith(GRANT_ACCOUNT_PREFIX)).map((a) => a.slice(GRANT_ACCOUNT_PREFIX.length));
  const leftovers = await grantItems();
  const session = new Session({ ...config.idp, secrets, openUrl: devBrowser(config.user, config.idp.issuer) });
  /** The private key each tunnel was opened with, by its preferred port (one grant at a time per resource). */
  const keys = new Map<number, string>();
  const agent = new Agent({
    settings: new MemorySettingsStore({ serverUrl: config.serverUrl, ports: config.ports, deviceId: config.deviceId }),
    secrets, session,
    openTunnel: (options: TunnelOptions) => {
      keys.set(options.preferredPort, options.privateKey.toString('utf8'));
      return openTunnel(options);
    },
  });
  await agent.start();
  // What the desktop shell runs (desktop/main/index.ts), looking every 250 ms instead of 30 s: the chaos run's grants
  // last 3–9 s, and a jump noticed after their deadline would test nothing.
  const detector = new ClockChangeDetector({ clock: systemClock, intervalMs: 250, onChange: () => agent.clockChanged() });
  detector.start();
  if (session.status.status !== 'signed_in') await agent.api.signIn({});
  send({ ready: true, leftovers, after: await grantItems() });

  const handlers: Record<string, (input: Record<string, unknown>) => Promise<unknown>> = {
    open: async ({ resourceId, seconds }) => {
      const { connection } = await agent.api.createRequest({ resourceId: String(resourceId), level: 'read', durationSeconds: Number(seconds), reason: 'chaos', connect: true });
      if (!connection) throw new Error('no connection: the request was not approved at once');
      const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
      const grant = agent.state().grants.find((g) => g.grant.id === connection.grantId)!.grant;
      return { grantId: connection.grantId, endsAt: Date.parse(grant.endsAt), port: connection.port, uri, key: keys.get(config.ports[String(resourceId)]!) };
    },
  };
  createInterface({ input: process.stdin }).on('line', (line) => {
    const { id, cmd, ...input } = JSON.parse(line) as { id: number; cmd: string } & Record<string, unknown>;
    const handler = handlers[cmd];
    if (!handler) return send({ id, ok: false, error: `unknown command ${cmd}` });
    handler(input).then((value) => send({ id, ok: true, value }), (error: unknown) => send({ id, ok: false, error: error instanceof Error ? error.message : String(error) }));
  });
  process.stdin.on('end', () => {
    detector.stop();
    void agent.dispose().finally(() => process.exit(0));
  });
}

// Run as a program (stack.ts starts it); imported, it only lends its config type and constants.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  void main().catch((error: unknown) => {
    send({ fatal: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  });
}
