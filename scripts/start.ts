// `npm start`: Stint on its embedded default, for a newcomer on one machine. It starts, on loopback:
//   - the dev OpenID provider (DEV ONLY: demo users, any password),
//   - the grant server on SQLite with a demo config,
//   - where the machine has them: a PostgreSQL with demo databases, and an OpenSSH bastion wired to the server
//     (its key command and kill companion), so a granted tunnel reaches a real database,
//   - a private Secret Service when no desktop keychain is running (the agent never stores secrets in files),
//   - the agent with its UI: the Electron tray app where its binary is installed, otherwise the web host.
// Data lives in .stint-demo/ (STINT_DEMO_DIR) and is reused by the next run; `--reset` starts clean.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { startDevIdp, DEMO_USERS } from '../server/dev-idp/index';
import { buildServer } from '../server/app';
import { parseConfig } from '../server/config';
import { productionEffects } from '../server/main';
import { startCompanion } from '../server/bastion/companion';
import { createAgent } from '../electron/core/compose';
import { ConfSettingsStore } from '../electron/core/settings';
import { MemoryClipboard } from '../electron/core/clipboard';
import { startWebHost } from '../electron/hosts/web/host';
import { startPostgres, PG_BIN } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';
import { startKeyring } from '../test/harness/keyring';
import { installKeysCommand } from '../test/harness/keys-command';
import { sweep } from '../test/harness/tmp';
import { demoConfigYaml, DEMO_SQL } from './demo-config';

const args = process.argv.slice(2);
const dir = resolve(process.env.STINT_DEMO_DIR ?? '.stint-demo');
const base = Number(process.env.STINT_DEMO_BASE_PORT ?? 7800);
const ports = { server: base, idp: base + 1, web: base + 10, sshd: base + 22, pg: base + 32 };
const say = (line: string) => console.log(`start: ${line}`);
const stops: Array<() => Promise<unknown> | unknown> = [];

function secret(name: string): string {
  const file = join(dir, 'secrets.json');
  const all: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  all[name] ??= randomBytes(32).toString('base64url');
  writeFileSync(file, JSON.stringify(all, null, 2), { mode: 0o600 });
  return all[name]!;
}

async function main(): Promise<void> {
  if (args.includes('--reset')) {
    rmSync(dir, { recursive: true, force: true });
    say(`--reset: removed ${dir}`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755); // PostgreSQL runs as its own user and must reach its data dir below
  // Harness-started services record their pids here; swept on exit so nothing outlives the demo.
  const runRoot = join(dir, 'run');
  sweep(runRoot);
  mkdirSync(runRoot, { recursive: true, mode: 0o755 });
  process.env.STINT_TEST_ROOT = runRoot;
  stops.push(() => sweep(runRoot));

  if (!existsSync('dist/renderer/index.html')) {
    say('building the UI (vite build)');
    execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
  }

  const audience = `http://localhost:${ports.server}/api`;
  const issuer = `http://localhost:${ports.idp}`;
  const configYaml = demoConfigYaml({ ports, dir, audience, issuer });
  writeFileSync(join(dir, 'server.yaml'), configYaml);
  const config = parseConfig(configYaml, join(dir, 'server.yaml'));
  // The dev IdP accepts any password: it runs only for a config that says so.
  if (!config.identity.dev) throw new Error(`${join(dir, 'server.yaml')} does not say identity.dev: true — refusing to start the dev IdP`);
  const idp = await startDevIdp({ port: ports.idp, audience });
  stops.push(() => idp.close());
  say(`dev OpenID provider (DEV ONLY, any password) at ${idp.issuer} — users: ${DEMO_USERS.map((u) => `${u.sub} (${u.groups.join(', ')})`).join('; ')}`);

  const env: NodeJS.ProcessEnv = { ...process.env, STINT_DEMO_TOTP_KEY: secret('totpKey'), STINT_DEMO_BASTION_TOKEN: secret('bastionToken') };
  let database: 'real' | 'missing' = 'missing';
  if (existsSync(join(PG_BIN, 'initdb'))) {
    const pg = await startPostgres({ dir: join(dir, 'pg'), port: ports.pg, database: 'orders' });
    stops.push(() => pg.stop());
    for (const db of ['orders', 'users']) {
      const exists = await pg.query('select 1 from pg_database where datname = $1', [db], 'postgres');
      if (!exists.length) await pg.query(`create database ${db}`, [], 'postgres');
      await pg.query(DEMO_SQL[db]!, [], db);
    }
    env.STINT_DEMO_ORDERS_ADMIN = pg.adminUrl('orders');
    env.STINT_DEMO_USERS_ADMIN = pg.adminUrl('users');
    database = 'real';
    say(`PostgreSQL 15 on 127.0.0.1:${ports.pg} with demo databases orders and users`);
  } else {
    env.STINT_DEMO_ORDERS_ADMIN = env.STINT_DEMO_USERS_ADMIN = `postgres://unavailable@127.0.0.1:${ports.pg}/none`;
    say('PostgreSQL is not installed, so access can be requested but not used. Install it with: sudo bash build/prereqs.sh');
  }

  const serverUrl = `http://localhost:${ports.server}`;
  const server = await buildServer({ config, ...productionEffects(config, env), env });
  await server.app.listen({ host: '127.0.0.1', port: ports.server });
  stops.push(() => server.close());
  say(`grant server at ${serverUrl} (SQLite: ${join(dir, 'stint.db')})`);

  const canRunBastion = database === 'real' && process.getuid?.() === 0 && existsSync('/usr/sbin/sshd');
  if (canRunBastion) {
    // sshd accepts the key command only from a root-owned path (not the repo, not /tmp); one per demo dir.
    const keys = installKeysCommand(resolve('server/bastion/authorized-keys.sh'), 'nobody', { name: `stint-demo-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}` });
    stops.push(() => keys.remove());
    keys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: env.STINT_DEMO_BASTION_TOKEN! });
    const sshd = await startSshd({ port: ports.sshd, permitOpen: [`127.0.0.1:${ports.pg}`], authorizedKeysCommand: { command: keys.command } });
    stops.push(() => sshd.stop());
    const companion = startCompanion({ serverUrl, token: env.STINT_DEMO_BASTION_TOKEN! });
    stops.push(() => companion.stop());
    say(`OpenSSH bastion on 127.0.0.1:${ports.sshd} (keys from the grant server; connections killed when access ends)`);
  } else if (database === 'real') {
    say('the SSH bastion needs root and openssh-server (sudo bash build/prereqs.sh; run npm start as root) — tunnels are unavailable');
  }

  if (!process.env.DBUS_SESSION_BUS_ADDRESS) {
    const keyring = await startKeyring();
    stops.push(() => keyring.stop());
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    say('no desktop keychain running: started a private Secret Service (gnome-keyring) for this session');
  }

  const hasElectron = existsSync(join('node_modules', 'electron', 'path.txt')) && !args.includes('--web');
  if (hasElectron) {
    // The tray app: its own agent (same core), pointed at this demo's server and IdP.
    execFileSync('node', ['build/build-electron.mjs'], { stdio: 'inherit' });
    const electronBin = join('node_modules', 'electron', 'dist', readFileSync(join('node_modules', 'electron', 'path.txt'), 'utf8').trim());
    const app = spawn(electronBin, ['dist/electron/main/index.js'], {
      stdio: 'inherit',
      env: { ...process.env, STINT_USER_DATA: join(dir, 'electron'), STINT_SERVER_URL: serverUrl, STINT_ISSUER: idp.issuer, STINT_AUDIENCE: audience },
    });
    stops.push(() => app.kill());
    app.once('exit', () => void stop(0));
    say('the Stint tray app is starting (use --web for the browser UI instead). Sign in from its tray menu.');
    return;
  }
  say('the Electron binary is not installed here (its download server is unreachable), so Stint runs in the web host instead');
  const settings = new ConfSettingsStore({ cwd: join(dir, 'agent') });
  settings.update({ serverUrl, issuer: idp.issuer, audience });
  const agent = createAgent({
    settings,
    clipboard: new MemoryClipboard(),
    openUrl: (url) => {
      if (!process.env.DISPLAY && process.platform === 'linux') return;
      spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true }).on('error', () => undefined).unref();
    },
  });
  await agent.start();
  stops.push(() => agent.dispose());
  const host = await startWebHost({ staticDir: 'dist/renderer', agent, port: ports.web });
  stops.push(() => host.close());
  console.log(`\nStint is running. Open this link in a browser on this machine:\n\n  ${host.url}\n\nSign in as alice (engineer), bob or dave (approvers) or carol (admin); any password. Ctrl+C stops everything.`);
  if (process.env.STINT_DEMO_READY_FILE) writeFileSync(process.env.STINT_DEMO_READY_FILE, JSON.stringify({ url: host.url, ports }));
}

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    for (const fn of stops.reverse()) {
      try { await fn(); } catch { /* keep stopping the rest */ }
    }
  }
  process.exit(code);
}
process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));

main().catch(async (error) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`start: ${/EADDRINUSE/.test(message) ? `${message} — another Stint demo (or program) uses ports ${base}–${base + 32}; stop it or set STINT_DEMO_BASE_PORT` : message}`);
  await stop(1);
});
