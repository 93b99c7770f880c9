// The agent alone in its own process, for bench/scale.ts: opens `grants` grants (each with its tunnel) through the
// given server, waits for start-up work to settle, then reports over a window its CPU use and its resident memory
// (process.memoryUsage().rss: this process's VmRSS) as one JSON line. Like support/idle-agent.ts, its session is the
// real OIDC one restored from the keychain where the parent's sign-in left the refresh token.
import { Agent } from '../../agent/core/agent';
import { KeytarSecretStore } from '../../agent/core/secrets/keytar-store';
import { MemorySettingsStore } from '../../agent/core/settings';
import { Session } from '../../agent/core/session';

const { serverUrl, port, seconds, grants, service, issuer, clientId, audience } = JSON.parse(process.argv[2]!) as {
  serverUrl: string; port: number; seconds: number; grants: number; service: string; issuer: string; clientId: string; audience: string;
};
const secrets = new KeytarSecretStore(service);
const session = new Session({
  issuer, clientId, audience, secrets,
  openUrl: () => { throw new Error('the scale agent signs in from the keychain; it has no browser'); },
});
const agent = new Agent({ settings: new MemorySettingsStore({ serverUrl, ports: { 'prod-orders': port } }), secrets, session });
await agent.start();
if (agent.state().session.status !== 'signed_in') throw new Error('the scale agent found no session in the keychain');
for (let i = 0; i < grants; i++) await agent.api.createRequest({ resourceId: 'prod-orders', level: 'read', durationSeconds: 3600, reason: 'bench' });
const open = agent.state().grants.filter((g) => g.tunnel?.status === 'open').length;
await new Promise((r) => setTimeout(r, 3000)); // start-up work (JIT, GC) settles
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let rssMax = 0;
const sampler = setInterval(() => { rssMax = Math.max(rssMax, process.memoryUsage().rss); }, 250);
await new Promise((r) => setTimeout(r, seconds * 1000));
clearInterval(sampler);
const cpu = process.cpuUsage(cpu0);
const wallMs = performance.now() - t0;
const rss = process.memoryUsage().rss;
console.log(JSON.stringify({ open, cpuMs: (cpu.user + cpu.system) / 1000, wallMs, rssMb: rss / 1048576, rssMaxMb: Math.max(rssMax, rss) / 1048576 }));
await agent.dispose();
process.exit(0);
