// Benchmark: deadline → local access gone. For each grant (activated by the real grant server in-process, a real
// PostgreSQL role, a real tunnel through the OpenSSH bastion with Stint's key command, a live psql-protocol connection
// through it, DB credentials in the real gnome-keyring), the agent's clock reaches the deadline and we time until the
// listener refuses connections, the live socket is closed, and the keychain item is deleted. The agent's clock is a
// FakeClock so the deadline is an instant we choose, not a wait; the server keeps real time.
//   wipe_p99_ms (target ≤ 50), wipe_p50_ms, wipe_max_ms
import { startAgentBackend, signedInAgent } from './support/agent-backend';
import { connect, type Socket } from 'node:net';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, runDir, sweep } from '../dev/run-dir';
import { FakeClock } from '../dev/fake-clock';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.once('connect', () => {
      // SSLRequest: wait for PostgreSQL's one-byte answer so the forward is really established end to end.
      socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
      socket.once('data', () => resolve(socket));
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`the tunnel on port ${port} closed the connection before PostgreSQL answered`)));
  });
}

const refuses = (port: number) => new Promise<boolean>((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(false); });
  s.once('error', () => resolve(true));
});

export default async function wipeBench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const grants = opts.quick ? 20 : 60;
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const { backend, server } = await startAgentBackend(stops);
    const clock = new FakeClock();
    let onEnded: (grantId: string) => void = () => {};
    const { agent, secrets } = await signedInAgent(backend, server, stops, {
      ports: { 'prod-orders': await freePort() }, clock,
      onEnded: ({ grantId, wipe }) => { if (!wipe.keychain) throw new Error(`no keychain item was deleted for ${grantId}`); onEnded(grantId); },
    });
    const samples: number[] = [];
    for (let i = 0; i < grants; i++) {
      const { connection } = await agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 600, reason: 'bench' });
      const { grantId, port } = connection!;
      const socket = await openSocket(port);
      const socketClosed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
      socket.on('error', () => {});
      const ended = new Promise<number>((resolve) => { onEnded = (id) => { if (id === grantId) resolve(performance.now()); }; });
      const t0 = performance.now();
      clock.advance(600_000);
      const [endedAt, closedAt] = await Promise.all([ended, socketClosed]);
      const sample = Math.max(endedAt, closedAt) - t0;
      // Verify what the number claims (outside the timed section).
      if (!(await refuses(port))) throw new Error('the listener still accepts connections after the deadline');
      if ((await secrets.list()).includes(`grant:${grantId}`)) throw new Error('the keychain item survived the deadline');
      samples.push(sample);
    }
    return {
      wipe_p99_ms: Math.round(percentile(samples, 99) * 10) / 10,
      wipe_p50_ms: Math.round(percentile(samples, 50) * 10) / 10,
      wipe_max_ms: Math.round(Math.max(...samples) * 10) / 10,
      grants,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (ownRoot) {
      sweep(root);
      delete process.env[RUN_DIR_ENV];
    }
  }
}
