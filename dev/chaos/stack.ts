// The parts the chaos run breaks, all real and each restartable: PostgreSQL (the grant servers' storage and the
// grants' database), the OpenSSH bastion with Stint's key command, the dev IdP, a Secret Service, two grant server
// instances (the real CLI in child processes) sharing the storage, and agents in processes of their own
// (agent-process.ts), each under libfaketime (dev/faketime.ts) so the run can move its wall clock. Every process is in the run dir's pid list and dies with this one (dev/process.ts).
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startPostgres, type PostgresInstance } from '../postgres';
import { startKeyring, type KeyringInstance } from '../keyring';
import { startIdp, type IdpInstance } from '../idp';
import { startSshd, type SshdInstance } from '../sshd';
import { installKeysCommand, type InstalledKeysCommand } from '../keys-command';
import { BASTION_TOKEN, spawnGrantServer, testConfig, type SpawnedGrantServer } from '../grant-server';
import { freePort } from '../ports';
import { serviceDir } from '../run-dir';
import { startProcess, stopList, type Started } from '../process';
import { fakeTime, type FakeTime } from '../faketime';
import type { ServerConfigInput } from '../../server/config';
import { CHAOS_AGENT_ENV, LINE_PREFIX, type ChaosAgentConfig } from './agent-process';

const ROOT = resolve(import.meta.dirname, '../..');
const STORAGE_DB = 'stint_chaos';

/** What each grant's role may do: read the grants' database. */
const LEVELS = { read: ['GRANT CONNECT ON DATABASE {{database}} TO {{role}}', 'GRANT USAGE ON SCHEMA public TO {{role}}'] };

export interface Opened { grantId: string; endsAt: number; port: number; uri: string; key: string }

/** A grant server instance that can be killed, frozen and started again on the same port and storage. */
export class ServerInstance {
  running: SpawnedGrantServer | undefined;
  frozen = false;
  /** What the instance's earlier runs printed (warnings and errors), for the report of a violation. */
  private earlier = '';

  constructor(readonly name: string, readonly url: string, private readonly start: () => Promise<SpawnedGrantServer>) {}

  get up(): boolean {
    return this.running !== undefined && !this.frozen;
  }

  /** Start (again); while the database is down the server cannot start, so it is tried until it does. */
  async boot(stopping: () => boolean): Promise<void> {
    for (let attempt = 0; !stopping(); attempt++) {
      try {
        this.running = await this.start();
        return;
      } catch {
        await sleep(Math.min(2_000, 250 * (attempt + 1)));
      }
    }
  }

  async kill(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    this.frozen = false;
    await running?.stop('SIGKILL');
    if (running) this.earlier = `${this.earlier}${running.proc.output()}\n--- kill -9 ---\n`.slice(-20_000);
  }

  output(): string {
    return `${this.earlier}${this.running?.proc.output() ?? ''}`;
  }

  freeze(): void {
    if (!this.running?.proc.child.pid) return;
    process.kill(this.running.proc.child.pid, 'SIGSTOP');
    this.frozen = true;
  }

  thaw(): void {
    if (this.running?.proc.child.pid && this.frozen) process.kill(this.running.proc.child.pid, 'SIGCONT');
    this.frozen = false;
  }
}

/** An agent process, driven line by line (see agent-process.ts). */
export class AgentProcess {
  private proc: Started | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** When this process last came up (ms); 0 while it is down. */
  upSince = 0;
  readonly service = `stint-chaos-${randomUUID()}`;
  readonly deviceId = randomUUID();
  /** The process's wall clock (CLOCK_REALTIME only, as a user or NTP moves it); a restart keeps its offset. */
  private readonly clock: FakeTime;

  constructor(readonly name: string, private readonly config: Omit<ChaosAgentConfig, 'service' | 'deviceId'>) {
    this.clock = fakeTime(name);
  }

  /** Move the agent's wall clock by `ms`: it notices within 250 ms (agent-process.ts), as a desktop shell would. */
  jumpClock(ms: number): void {
    this.clock.jump(ms);
  }

  /** The agent's clock minus the real one, ms (jumps add up, and survive restarts as a laptop's wrong clock does). */
  get clockOffsetMs(): number {
    return this.clock.offsetMs;
  }

  get up(): boolean {
    return this.upSince > 0;
  }

  /** Start the process; resolves with what its start-up left in the keychain of grants (should be nothing). */
  async boot(): Promise<{ leftovers: string[]; after: string[] }> {
    const config: ChaosAgentConfig = { ...this.config, service: this.service, deviceId: this.deviceId };
    const proc = this.proc = startProcess(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 'agent-process.ts')], {
      cwd: ROOT, env: { ...process.env, ...this.clock.env, [CHAOS_AGENT_ENV]: JSON.stringify(config) },
    });
    this.clock.watch(proc.child);
    return new Promise((resolveReady, rejectReady) => {
      const timer = setTimeout(() => rejectReady(new Error(`agent ${this.name} did not start: ${proc.output()}`)), 60_000);
      proc.child.once('exit', () => {
        clearTimeout(timer);
        if (this.proc === proc) this.upSince = 0;
        rejectReady(new Error(`agent ${this.name} exited: ${proc.output().slice(-2_000)}`));
        for (const w of this.waiting.values()) w.reject(new Error('agent process exited'));
        this.waiting.clear();
      });
      createInterface({ input: proc.child.stdout! }).on('line', (line) => {
        if (!line.startsWith(LINE_PREFIX)) return;
        const message = JSON.parse(line.slice(LINE_PREFIX.length)) as { id?: number; ok?: boolean; value?: unknown; error?: string; ready?: boolean; fatal?: string; leftovers?: string[]; after?: string[] };
        if (message.ready) {
          clearTimeout(timer);
          this.upSince = Date.now();
          resolveReady({ leftovers: message.leftovers ?? [], after: message.after ?? [] });
        } else if (message.id !== undefined) {
          const w = this.waiting.get(message.id);
          this.waiting.delete(message.id);
          if (message.ok) w?.resolve(message.value);
          else w?.reject(new Error(message.error));
        }
      });
    });
  }

  call<T>(cmd: string, input: Record<string, unknown>, timeoutMs = 20_000): Promise<T> {
    const proc = this.proc;
    if (!proc || !this.up) return Promise.reject(new Error('agent down'));
    const id = this.nextId++;
    return new Promise<T>((resolveCall, rejectCall) => {
      const timer = setTimeout(() => { this.waiting.delete(id); rejectCall(new Error(`${cmd} timed out`)); }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => { clearTimeout(timer); resolveCall(v as T); },
        reject: (e) => { clearTimeout(timer); rejectCall(e); },
      });
      proc.child.stdin!.write(`${JSON.stringify({ id, cmd, ...input })}\n`);
    });
  }

  async kill(): Promise<void> {
    this.upSince = 0;
    await this.proc?.stop('SIGKILL');
  }

  /** Quit as a user would (stdin closed: the agent disposes itself). */
  async quit(): Promise<void> {
    this.upSince = 0;
    this.proc?.child.stdin?.end();
    await this.proc?.stop('SIGTERM');
  }
}

export interface ChaosStack {
  pg: PostgresInstance;
  keyring: KeyringInstance;
  idp: IdpInstance;
  sshd: SshdInstance;
  keys: InstalledKeysCommand;
  servers: ServerInstance[];
  agents: AgentProcess[];
  resources: string[];
  storageUrl: string;
  configPath: string;
  /** Point the bastion's key command at a live instance (it asks one server). */
  pointBastionAt: (server: ServerInstance) => void;
  stop: () => Promise<void>;
}

export async function startChaosStack(options: { agents: number; resources: number; instances: number }): Promise<ChaosStack> {
  const { stops, stopAll } = stopList();
  try {
    const [pg, keyring, idp] = await Promise.all([startPostgres(), startKeyring(), startIdp()]);
    stops.push(() => keyring.stop(), () => pg.stop(), () => idp.close());
    Object.assign(process.env, keyring.env);
    await pg.query(`create database ${STORAGE_DB}`, [], 'postgres');
    const storageUrl = pg.adminUrl(STORAGE_DB);
    const keys = installKeysCommand(resolve(ROOT, 'server/bastion/authorized-keys.sh'));
    stops.push(() => keys.remove());
    const sshd = await startSshd({ permitOpen: [`127.0.0.1:${pg.port}`], authorizedKeysCommand: { command: keys.command } });
    stops.push(() => sshd.stop());

    const resources = Array.from({ length: options.resources }, (_, i) => `r${i}`);
    const servers: ServerInstance[] = [];
    for (let i = 0; i < options.instances; i++) {
      const port = await freePort();
      const dataDir = serviceDir(`grant-server-${i}`);
      const config: ServerConfigInput = {
        ...testConfig(idp, storageUrl, port),
        bastions: { main: { host: sshd.host, port: sshd.port, user: sshd.user, token: BASTION_TOKEN, hostKeys: [sshd.hostKeyLine] } },
        resources: resources.map((id) => ({
          id, name: id, environment: 'production', sensitivity: 'high' as const, kind: 'postgres' as const, bastion: 'main',
          target: { host: '127.0.0.1', port: pg.port, database: pg.database }, admin: { url: pg.adminUrl() }, levels: LEVELS, policy: 'chaos',
        })),
        policies: { chaos: { requesters: ['engineers'], duration: { default: '5s', max: '10m' }, autoApprove: { when: { groups: ['engineers'] } } } },
      };
      const instance = new ServerInstance(`server-${String.fromCharCode(65 + i)}`, `http://127.0.0.1:${port}`, () => spawnGrantServer({ idp, config, port, dataDir }));
      // One at a time: the first migrates the shared storage.
      await instance.boot(() => false);
      stops.push(() => instance.kill());
      servers.push(instance);
    }
    const pointBastionAt = (server: ServerInstance) => keys.writeConfig({ STINT_SERVER_URL: server.url, STINT_BASTION_TOKEN: BASTION_TOKEN });
    pointBastionAt(servers[0]!);

    const agents: AgentProcess[] = [];
    for (let i = 0; i < options.agents; i++) {
      const ports: Record<string, number> = {};
      for (const r of resources) ports[r] = await freePort();
      const agent = new AgentProcess(`agent-${i}`, {
        serverUrl: servers[i % servers.length]!.url, user: 'alice', ports,
        idp: { issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience },
      });
      stops.push(() => agent.quit());
      await agent.boot();
      agents.push(agent);
    }
    const configPath = servers[0]!.running!.configPath;
    return { pg, keyring, idp, sshd, keys, servers, agents, resources, storageUrl, configPath, pointBastionAt, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
