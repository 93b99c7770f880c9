// `npm start`: Stint on its embedded default, for a newcomer on one machine. It starts, on loopback:
//   - the dev OpenID provider (DEV ONLY: demo users, any password),
//   - the grant server on SQLite with a demo config,
//   - where the machine has them: a PostgreSQL with demo databases, and an OpenSSH bastion wired to the server
//     (its key command and kill companion), so a granted tunnel reaches a real database,
//   - a private Secret Service when no desktop keychain is running (the agent never stores secrets in files),
//   - an agent with its UI for each demo user (requester, approvers, admin) so one person can play every side: a web
//     host each, and for the requester the Electron tray app instead where its binary is installed.
// Data lives in .stint-demo/ (STINT_DEMO_DIR) and is reused by the next run; `--reset` starts clean.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { startDevIdp, DEMO_USERS, DEV_CI_CLIENT } from '../server/dev-idp/index';
import { buildServer } from '../server/app';
import { parseConfig } from '../server/config';
import { productionEffects } from '../server/main';
import { startCompanion } from '../server/bastion/companion';
import { startPostgres, PG_BIN } from '../dev/postgres';
import { mariadbInstalled, startMariadb } from '../dev/mariadb';
import { startSshd, startTargetSshd } from '../dev/sshd';
import { startKeyring } from '../dev/keyring';
import { installKeysCommand } from '../dev/keys-command';
import { isAlive, sweep, traversableByOthers, useRunDir } from '../dev/run-dir';
import { assertPortsFree } from '../dev/port-holder';
import { startWebhookReceiver } from '../dev/webhook-receiver';
import { demoConfigYaml, demoTryText, peopleResources, DEMO_MARIADB_SQL, DEMO_SQL } from './demo-config';
import { uiBuildReason } from './ui-build';
import { DEMO_ROLES, startDemoAgent } from './demo-agents';

const args = process.argv.slice(2);
const dir = resolve(process.env.STINT_DEMO_DIR ?? '.stint-demo');
const base = Number(process.env.STINT_DEMO_BASE_PORT ?? 7800);
const ports = { server: base, idp: base + 1, webhooks: base + 5, web: base + 10, sshd: base + 22, target: base + 23, pg: base + 32, mariadb: base + 33 };
/** One web host per demo role, from base+10 on: alice's is ports.web. */
const webPort = (index: number) => ports.web + index;
const say = (line: string) => console.log(`start: ${line}`);
/** What the demo runs in this process (agents, web hosts, server, IdP), stopped first… */
const stops: Array<() => Promise<unknown> | unknown> = [];
/** …then the services they use (PostgreSQL, sshd, the keyring), then the run dir is swept. */
const serviceStops: Array<() => Promise<unknown> | unknown> = [];
let runDirToSweep: string | undefined;
// The cluster lives outside the demo dir when `postgres` (initdb runs as that user under root) cannot reach it, e.g.
// a clone under root's 0700 home; one per demo dir, so --reset of this demo removes only its own.
const pgOutside = join('/var/lib/stint-demo', createHash('sha256').update(dir).digest('hex').slice(0, 12));

function secret(name: string): string {
  const file = join(dir, 'secrets.json');
  const all: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  all[name] ??= randomBytes(32).toString('base64url');
  writeFileSync(file, JSON.stringify(all, null, 2), { mode: 0o600 });
  return all[name]!;
}

/** Where a database that runs as its own system user (postgres, mysql) keeps its data: see pgOutside. */
function databaseDir(name: 'pg' | 'mariadb'): string {
  const inside = join(dir, name);
  if (process.getuid?.() !== 0 || traversableByOthers(inside)) return inside;
  mkdirSync(pgOutside, { recursive: true, mode: 0o755 });
  return join(pgOutside, name);
}

async function main(): Promise<void> {
  const roles = DEMO_ROLES.map((role, index) => ({ ...role, port: webPort(index) }));
  // Processes of a demo that was killed (kill -9, a closed terminal) are recorded in its run dir: stop them first —
  // unless that demo is still running.
  const runRoot = join(dir, 'run');
  const owner = join(runRoot, 'owner.pid');
  const running = existsSync(owner) ? Number(readFileSync(owner, 'utf8')) : undefined;
  if (running && running !== process.pid && isAlive(running)) {
    throw new Error(`a Stint demo (process ${running}) is already running from ${dir}. Use that one (its links are in its terminal), stop it with Ctrl+C or \`kill ${running}\`, or start another with STINT_DEMO_DIR=<folder> STINT_DEMO_BASE_PORT=${base + 100} npm start`);
  }
  const leftover = sweep(runRoot);
  if (leftover.killed.length) say(`stopped ${leftover.killed.length} process(es) left running by an earlier demo that did not stop cleanly`);
  await assertPortsFree(
    { 'grant server': ports.server, 'dev OpenID provider': ports.idp, 'webhook receiver': ports.webhooks, 'SSH bastion': ports.sshd, 'SSH target host': ports.target, PostgreSQL: ports.pg, MariaDB: ports.mariadb, ...Object.fromEntries(roles.map((r) => [`${r.user}'s web host`, r.port])) },
    `Stop that process (another Stint demo? Ctrl+C in its terminal), or start this one on other ports: STINT_DEMO_BASE_PORT=${base + 100} npm start`,
  );
  if (args.includes('--reset')) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pgOutside, { recursive: true, force: true });
    say(`--reset: removed ${dir}`);
  }
  mkdirSync(dir, { recursive: true });
  useRunDir(runRoot);
  writeFileSync(owner, String(process.pid));
  runDirToSweep = runRoot;

  const rebuild = uiBuildReason('.');
  if (rebuild) {
    say(`building the UI (vite build: ${rebuild})`);
    execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
  }

  const audience = `http://localhost:${ports.server}/api`;
  const issuer = `http://localhost:${ports.idp}`;
  const serverUrl = `http://localhost:${ports.server}`;
  const env: NodeJS.ProcessEnv = { ...process.env, STINT_DEMO_TOTP_KEY: secret('totpKey'), STINT_DEMO_BASTION_TOKEN: secret('bastionToken'), STINT_DEMO_HOST_TOKEN: secret('hostToken') };

  let database: 'real' | 'missing' = 'missing';
  if (existsSync(join(PG_BIN, 'initdb'))) {
    const pgDir = databaseDir('pg');
    const pg = await startPostgres({ dir: pgDir, port: ports.pg, database: 'orders' });
    serviceStops.push(() => pg.stop());
    for (const db of ['orders', 'users']) {
      const exists = await pg.query('select 1 from pg_database where datname = $1', [db], 'postgres');
      if (!exists.length) await pg.query(`create database ${db}`, [], 'postgres');
      await pg.query(DEMO_SQL[db]!, [], db);
    }
    env.STINT_DEMO_ORDERS_ADMIN = pg.adminUrl('orders');
    env.STINT_DEMO_USERS_ADMIN = pg.adminUrl('users');
    database = 'real';
    say(`PostgreSQL 15 on 127.0.0.1:${ports.pg} with demo databases orders and users${pgDir.startsWith(dir) ? '' : ` (data in ${pgDir}: the postgres user cannot enter ${dir})`}`);
  } else {
    env.STINT_DEMO_ORDERS_ADMIN = env.STINT_DEMO_USERS_ADMIN = `postgres://unavailable@127.0.0.1:${ports.pg}/none`;
    say('PostgreSQL is not installed, so access can be requested but not used. Install it with: sudo bash build/prereqs.sh');
  }

  // MariaDB where it is installed: the third kind in the tray (its resource is listed either way).
  let mariadbRunning = false;
  if (database === 'real' && mariadbInstalled()) {
    const mariadbDir = databaseDir('mariadb');
    const mariadb = await startMariadb({ dir: mariadbDir, port: ports.mariadb, database: 'shop' });
    serviceStops.push(() => mariadb.stop());
    await mariadb.query(DEMO_MARIADB_SQL);
    env.STINT_DEMO_SHOP_ADMIN = mariadb.adminUrl('');
    mariadbRunning = true;
    say(`MariaDB on 127.0.0.1:${ports.mariadb} with demo database shop${mariadbDir.startsWith(dir) ? '' : ` (data in ${mariadbDir}: the mysql user cannot enter ${dir})`}`);
  } else {
    env.STINT_DEMO_SHOP_ADMIN = `mysql://unavailable@127.0.0.1:${ports.mariadb}/`;
    if (database === 'real') say('MariaDB is not installed, so "Shop (staging, MariaDB)" can be requested but not used. Install it with: sudo bash build/prereqs.sh');
  }

  // The bastion before the server: its host key goes into the config, and agents connect to no other.
  let bastionHostKeys: string[] | undefined;
  let targetHostKeys: string[] | undefined;
  const canRunBastion = database === 'real' && process.getuid?.() === 0 && existsSync('/usr/sbin/sshd');
  if (canRunBastion) {
    // sshd accepts the key command only from a root-owned path (not the repo, not /tmp); one per demo dir.
    const keys = installKeysCommand(resolve('server/bastion/authorized-keys.sh'), 'nobody', { name: `stint-demo-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}` });
    serviceStops.push(() => keys.remove());
    keys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: env.STINT_DEMO_BASTION_TOKEN! });
    // The SSH target host (resource staging-web): a second sshd as the local login stinttarget, with the same key
    // program under its own token, reached through the bastion.
    const hostKeys = installKeysCommand(resolve('server/bastion/authorized-keys.sh'), 'nobody', { name: `stint-demo-host-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}` });
    serviceStops.push(() => hostKeys.remove());
    hostKeys.writeConfig({ STINT_SERVER_URL: serverUrl, STINT_BASTION_TOKEN: env.STINT_DEMO_HOST_TOKEN! });
    const target = await startTargetSshd({ port: ports.target, authorizedKeysCommand: { command: hostKeys.command } });
    serviceStops.push(() => target.stop());
    targetHostKeys = [target.hostKeyLine];
    const sshd = await startSshd({ port: ports.sshd, permitOpen: [`127.0.0.1:${ports.pg}`, `127.0.0.1:${ports.target}`, ...(mariadbRunning ? [`127.0.0.1:${ports.mariadb}`] : [])], authorizedKeysCommand: { command: keys.command } });
    serviceStops.push(() => sshd.stop());
    bastionHostKeys = [sshd.hostKeyLine];
  } else if (database === 'real') {
    say('the SSH bastion needs root and openssh-server (sudo bash build/prereqs.sh; run npm start as root) — tunnels are unavailable');
  }

  // Passkeys work on every demo web host and on the server's own origin, where the tray app runs its step-up page.
  const webauthnOrigins = [serverUrl, ...roles.map((r) => `http://localhost:${r.port}`)];
  // A local webhook receiver (dev/webhook-receiver.ts) that checks each event's signature and prints it, with the
  // approval page's link for a request that waits: what a team's chat or SIEM would get (docs/admin.md, Webhooks).
  const webhooks = await startWebhookReceiver({ port: ports.webhooks, secret: `whsec_${Buffer.from(secret('webhookKey'), 'base64url').toString('base64')}`, onEvent: printWebhook });
  stops.push(() => webhooks.close());
  env.STINT_DEMO_WEBHOOK_URL = webhooks.url;
  env.STINT_DEMO_WEBHOOK_SECRET = webhooks.secret;
  say(`webhook receiver at ${webhooks.url}: prints every signed event the server sends (lines starting "webhook:")`);
  const configYaml = `${demoConfigYaml({ ports, dir, audience, issuer, webauthnOrigins, ...(bastionHostKeys ? { bastionHostKeys } : {}), ...(targetHostKeys ? { targetHostKeys } : {}) })}
# Added by npm start: every event to the demo's local webhook receiver.
webhooks:
  endpoints:
    demo-receiver: { url: env:STINT_DEMO_WEBHOOK_URL, secret: env:STINT_DEMO_WEBHOOK_SECRET, events: ["*"] }
`;
  writeFileSync(join(dir, 'server.yaml'), configYaml);
  const config = parseConfig(configYaml, join(dir, 'server.yaml'));
  // The dev IdP accepts any password: it runs only for a config that says so.
  if (!config.identity.dev) throw new Error(`${join(dir, 'server.yaml')} does not say identity.dev: true — refusing to start the dev IdP`);
  const idp = await startDevIdp({ port: ports.idp, audience });
  stops.push(() => idp.close());
  say(`dev OpenID provider (DEV ONLY, any password) at ${idp.issuer} — users: ${DEMO_USERS.map((u) => `${u.sub} (${u.groups.join(', ')})`).join('; ')}`);

  // With its file, so policies, resources and bastions reload when it is edited, as docs/admin.md says (without it the
  // demo's server ignored every edit and refused POST /v1/admin/config/reload); warnings and errors — a refused
  // reload's reasons — go to this terminal.
  const server = await buildServer({ config, configPath: join(dir, 'server.yaml'), logger: { level: 'warn' }, ...productionEffects(config, env), env });
  await server.app.listen({ host: '127.0.0.1', port: ports.server });
  stops.push(() => server.close());
  say(`grant server at ${serverUrl} (SQLite: ${join(dir, 'stint.db')}; config ${relative(process.cwd(), join(dir, 'server.yaml'))}: edits to policies, resources and bastions reload at once, and the next start writes it afresh from docs/config.example.yaml)`);
  if (canRunBastion) {
    const companion = startCompanion({ serverUrl, token: env.STINT_DEMO_BASTION_TOKEN! });
    stops.push(() => companion.stop());
    say(`OpenSSH bastion on 127.0.0.1:${ports.sshd} (keys from the grant server; connections killed when access ends; agents pin its host key)`);
    const hostCompanion = startCompanion({ serverUrl, token: env.STINT_DEMO_HOST_TOKEN! });
    stops.push(() => hostCompanion.stop());
    say(`SSH target host on 127.0.0.1:${ports.target} ("${config.resources.find((r) => r.kind === 'ssh')?.name ?? 'staging-web'}": log in as stinttarget through the bastion with the ssh command its card copies; sessions killed when access ends)`);
  }

  if (!process.env.DBUS_SESSION_BUS_ADDRESS) {
    const keyring = await startKeyring();
    serviceStops.push(() => keyring.stop());
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    say('no desktop keychain running: started a private Secret Service (gnome-keyring) for this session');
  }

  const hasElectron = existsSync(join('node_modules', 'electron', 'path.txt')) && !args.includes('--web');
  const links: Record<string, string> = {};
  const sockets: Record<string, string> = {};
  for (const role of roles) {
    // With the tray app, the requester uses it; every other demo user gets a web host of their own.
    if (hasElectron && role.user === 'alice') continue;
    const started = await startDemoAgent({ user: role.user, port: role.port, dir: join(dir, 'agents', role.user), serverUrl, issuer: idp.issuer, audience });
    stops.push(() => started.stop());
    links[role.user] = started.url;
    sockets[role.user] = started.socket;
  }
  if (hasElectron) {
    // The tray app: its own agent (same core), pointed at this demo's server and IdP.
    execFileSync('node', ['build/build-electron.mjs'], { stdio: 'inherit' });
    const electronBin = join('node_modules', 'electron', 'dist', readFileSync(join('node_modules', 'electron', 'path.txt'), 'utf8').trim());
    const app = spawn(electronBin, ['dist/desktop/main/index.js'], {
      stdio: 'inherit',
      env: { ...process.env, STINT_USER_DATA: join(dir, 'electron'), STINT_SERVER_URL: serverUrl, STINT_ISSUER: idp.issuer, STINT_AUDIENCE: audience },
    });
    stops.push(() => app.kill());
    app.once('exit', () => void stop(0));
    say('the Stint tray app is starting (use --web for the browser UI instead): sign in there as alice.');
  } else {
    say('the Electron binary is not installed here (its download server is unreachable), so Stint runs in the web host instead');
  }
  console.log('\nStint is running. Each demo user has an agent of their own; open their links in a browser on this machine:\n');
  for (const role of roles) {
    if (links[role.user]) console.log(`  ${role.user.padEnd(6)} ${role.title.padEnd(36)} ${links[role.user]}`);
  }
  const demoSockets = Object.fromEntries(Object.entries(sockets).map(([user, socket]) => [user, relative(process.cwd(), socket)]));
  console.log(`\n${demoTryText({ serverUrl, resources: peopleResources(config), autoApproved: (policy) => Boolean(config.policies[policy]?.autoApprove), confirmFirst: (policy) => config.policies[policy]?.stepUp.request === 'always', sockets: demoSockets })}
A CI job (service identity ci-migrations; docs/admin.md): with STINT_SERVER_URL=${serverUrl} STINT_CLIENT_ID=${DEV_CI_CLIENT.clientId}
STINT_CLIENT_SECRET=${DEV_CI_CLIENT.clientSecret}, run node bin/stint.mjs request ci-orders --level migrate --reason test
--ticket CHG-1 --wait (bob approves it outside 02:00-04:00 UTC), then node bin/stint.mjs connect ci-orders --exec 'psql -c "select 1"'.
Ctrl+C stops everything.`);
  if (process.env.STINT_DEMO_READY_FILE) writeFileSync(process.env.STINT_DEMO_READY_FILE, JSON.stringify({ url: links.alice, links, ports }));
}

/** One line per event the demo's receiver accepted (its signature checked), and the approval link of a waiting request. */
function printWebhook(body: unknown): void {
  const event = body as { type?: string; data?: { actor?: string; subject?: string; resourceId?: string; reason?: string; approveUrl?: string; detail?: { requestReason?: string } } };
  const d = event.data ?? {};
  const why = d.reason ?? d.detail?.requestReason;
  console.log(`webhook: ${event.type ?? '?'} — ${d.subject ?? d.actor ?? '?'}${d.resourceId ? ` on ${d.resourceId}` : ''}${why ? ` “${why}”` : ''}`);
  if (d.approveUrl) console.log(`webhook:   approve or deny: ${d.approveUrl}`);
}

// Ctrl+C signals the whole process group (npm, tsx and this process), so a signal may arrive more than once: every
// one after the first waits for the same stop instead of exiting half-way through it.
let stopping: Promise<never> | undefined;
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    say('stopping…');
    // Each group at once and bounded: one slow step must not keep the rest running (Ctrl+C ends it all in seconds);
    // whatever has not stopped in time is killed by the sweep of the run dir.
    const all = (fns: Array<() => Promise<unknown> | unknown>) => Promise.race([
      Promise.allSettled(fns.map((fn) => Promise.resolve().then(fn))),
      new Promise((r) => setTimeout(r, 5_000).unref()),
    ]);
    await all(stops);
    await all(serviceStops);
    if (runDirToSweep) sweep(runDirToSweep);
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('SIGHUP', () => void stop(0));

main().catch(async (error) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`start: ${message}`);
  await stop(1);
});
