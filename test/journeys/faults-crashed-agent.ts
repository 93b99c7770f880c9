// The agent that crashes, for test/journeys/faults-agent-crash.test.ts and the crash-resume journeys: a separate
// process (so SIGKILL is a real crash — no dispose, no timers, no cleanup) that signs in as a demo user, gets an
// auto-approved staging grant (staging-users unless FAULT_RESOURCE names another, e.g. the SSH host staging-web) with
// its tunnel or client files, prints what it got as one JSON line, and then waits to be killed.
import { createAgent } from '../../agent/core/compose';
import { MemorySettingsStore } from '../../agent/core/settings';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { driveDevInteractions } from '../../dev/idp';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const serverUrl = env('FAULT_SERVER_URL');
const issuer = env('FAULT_ISSUER');
const audience = env('FAULT_AUDIENCE');
const user = env('FAULT_USER');
const durationSeconds = Number(env('FAULT_DURATION_SECONDS'));
/** The device it runs on: its restart (the same device) is given the same one. */
const deviceId = process.env.FAULT_DEVICE_ID;
const resourceId = process.env.FAULT_RESOURCE ?? 'staging-users';
const level = process.env.FAULT_LEVEL ?? 'read';
/** Where a kind's client files go (an SSH host's ssh_config and key): left on disk by the crash, as on a laptop. */
const dataDir = process.env.FAULT_DATA_DIR;

const agent = createAgent({
  settings: new MemorySettingsStore({ serverUrl, issuer, audience, ...(deviceId ? { deviceId } : {}) }),
  clipboard: new MemoryClipboard(),
  ...(dataDir ? { dataDir } : {}),
  openUrl: async (url) => {
    await fetch(await driveDevInteractions(url, user, issuer));
  },
});

try {
  await agent.start();
  await agent.api.signIn({});
  const created = await agent.api.createRequest({ resourceId, level, durationSeconds, reason: 'crash test', connect: true });
  const connection = created.connection!;
  const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
  const command = agent.state().grants.find((g) => g.grant.id === connection.grantId)?.tunnel?.command;
  process.stdout.write(`${JSON.stringify({ grantId: connection.grantId, port: connection.port, role: connection.user, uri, command })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: String((error as Error)?.message ?? error) })}\n`);
  process.exit(1);
}
setInterval(() => undefined, 60_000); // keep running (holding the tunnel) until killed
