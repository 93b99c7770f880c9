// The agent that crashes, for test/journeys/faults-agent-crash.test.ts: a separate process (so SIGKILL is a real
// crash — no dispose, no timers, no cleanup) that signs in as a demo user, gets an auto-approved staging grant with
// a tunnel, prints what it got as one JSON line, and then waits to be killed.
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

const agent = createAgent({
  settings: new MemorySettingsStore({ serverUrl, issuer, audience, ...(deviceId ? { deviceId } : {}) }),
  clipboard: new MemoryClipboard(),
  openUrl: async (url) => {
    await fetch(await driveDevInteractions(url, user, issuer));
  },
});

try {
  await agent.start();
  await agent.api.signIn({});
  const created = await agent.api.createRequest({ resourceId: 'staging-users', level: 'read', durationSeconds, reason: 'crash test', connect: true });
  const connection = created.connection!;
  const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
  process.stdout.write(`${JSON.stringify({ grantId: connection.grantId, port: connection.port, role: connection.user, uri })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: String((error as Error)?.message ?? error) })}\n`);
  process.exit(1);
}
setInterval(() => undefined, 60_000); // keep running (holding the tunnel) until killed
