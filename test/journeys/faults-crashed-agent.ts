// The agent that crashes, for test/journeys/faults-agent-crash.test.ts, the crash-resume journeys and the tray's
// Resume: a separate process (so SIGKILL is a real crash — no dispose, no timers, no cleanup) that signs in as a demo
// user, gets an auto-approved staging grant (staging-users unless FAULT_RESOURCE names another, e.g. the SSH host
// staging-web; with FAULT_TOTP_CODE where the resource's policy asks for a step-up) with its tunnel or client files,
// prints what it got as one JSON line, and then waits to be killed. It watches the wall clock as the desktop shell
// does (ClockChangeDetector → clockChanged), so a clock moved from outside (faults-clock-process.test.ts runs it under
// libfaketime) reaches it as it would reach the tray.
import { createAgent } from '../../agent/core/compose';
import { MemorySettingsStore } from '../../agent/core/settings';
import { MemoryClipboard } from '../../agent/core/clipboard';
import { driveDevInteractions } from '../../dev/idp';
import { ClockChangeDetector } from '../../desktop/main/power';
import { systemClock } from '../../shared/domain/clock';

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
/** A one-time code of the user's authenticator app, for a resource whose policy asks the request for a step-up. */
const code = process.env.FAULT_TOTP_CODE;

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
  // 250 ms instead of the shell's 30 s: the tests' grants last seconds.
  new ClockChangeDetector({ clock: systemClock, intervalMs: 250, onChange: () => agent.clockChanged() }).start();
  await agent.api.signIn({});
  // With a step-up to give, connecting waits for it (connecting on approval would race the activation below).
  const created = await agent.api.createRequest({ resourceId, level, durationSeconds, reason: 'crash test', connect: !code });
  const requestId = created.request.id;
  let connected = created.connection;
  if (code) {
    const { challengeId } = await agent.api.stepUpChallenge({ action: { kind: 'request', requestId } });
    await agent.api.submitStepUp({ requestId, proof: { method: 'totp', challengeId, code } });
    connected = await agent.api.activateRequest({ requestId });
  }
  if (!connected) throw new Error(`request ${requestId} is ${created.request.state}, not connected`);
  const connection = connected;
  const { uri } = await agent.api.connectionUri({ grantId: connection.grantId });
  const command = agent.state().grants.find((g) => g.grant.id === connection.grantId)?.tunnel?.command;
  process.stdout.write(`${JSON.stringify({ grantId: connection.grantId, requestId, port: connection.port, role: connection.user, uri, command })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: String((error as Error)?.message ?? error) })}\n`);
  process.exit(1);
}
setInterval(() => undefined, 60_000); // keep running (holding the tunnel) until killed
