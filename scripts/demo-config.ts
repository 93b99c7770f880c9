// The demo's grant-server configuration (docs/config.example.yaml with this run's ports and paths) and sample data.
// Two database resources show the two paths of the product: production (step-up, two approvals from different
// groups) and staging (instant when the risk is low); an SSH host (staging-web) and a MariaDB database (staging-shop,
// instant after a step-up) show the other kinds.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ResourceKind } from '../shared/contract/kinds';
import { kindWords } from '../shared/domain/kinds';
import type { ServerConfig } from '../server/config';

/** The example configuration admin.md points to; the demo loads it with each run's ports and paths. */
export const EXAMPLE_CONFIG = new URL('../docs/config.example.yaml', import.meta.url);

// webauthnOrigins: where passkeys may be used — every web host the demo serves and the grant server's own origin (the
// approve page, and the tray app's step-up page); default: the server and the one web port.
// bastionHostKeys: the host key of the sshd the demo started (the example's placeholder when there is none);
// targetHostKeys and ports.target: the same for the SSH target host's sshd; ports.mariadb: the demo's MariaDB.
export function demoConfigYaml(o: { ports: { server: number; web: number; sshd: number; pg: number; target?: number; mariadb: number }; dir: string; audience: string; issuer: string; webauthnOrigins?: string[]; bastionHostKeys?: string[]; targetHostKeys?: string[] }): string {
  const text = readFileSync(EXAMPLE_CONFIG, 'utf8');
  const doc = parseDocument(text);
  // Each value is replaced where it stands in the file, so the rest (comments, layout) is byte for byte the example.
  const edits: Array<{ start: number; end: number; text: string }> = [];
  const set = (path: Array<string | number>, value: string | number | string[]) => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    if (!node?.range) throw new Error(`${EXAMPLE_CONFIG.pathname} has no ${path.join('.')} to set`);
    const literal = (v: string | number) => (typeof v === 'number' ? String(v) : JSON.stringify(v));
    edits.push({ start: node.range[0], end: node.range[1], text: Array.isArray(value) ? `[${value.map(literal).join(', ')}]` : literal(value) });
  };
  set(['server', 'url'], `http://localhost:${o.ports.server}`);
  set(['server', 'listen', 'port'], o.ports.server);
  set(['identity', 'issuer'], o.issuer);
  set(['identity', 'audience'], o.audience);
  set(['storage', 'url'], `sqlite:${o.dir}/stint.db`);
  set(['webauthn', 'origins'], o.webauthnOrigins ?? [`http://localhost:${o.ports.server}`, `http://localhost:${o.ports.web}`]);
  set(['bastions', 'main', 'port'], o.ports.sshd);
  if (o.bastionHostKeys) set(['bastions', 'main', 'hostKeys'], o.bastionHostKeys);
  const resources = doc.getIn(['resources']) as { items: unknown[] };
  for (let i = 0; i < resources.items.length; i++) {
    if (doc.getIn(['resources', i, 'kind']) === 'ssh') {
      if (o.ports.target) set(['resources', i, 'target', 'port'], o.ports.target);
      if (o.targetHostKeys) set(['resources', i, 'target', 'hostKeys'], o.targetHostKeys);
    } else {
      set(['resources', i, 'target', 'port'], doc.getIn(['resources', i, 'kind']) === 'mariadb' ? o.ports.mariadb : o.ports.pg);
    }
  }
  let out = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return `# Written by npm start from docs/config.example.yaml (this run's ports and paths) — DEV ONLY.\n${out}`;
}

/**
 * Idempotent sample schema and rows for each demo database, which only roles granted CONNECT may log in to: PostgreSQL
 * grants CONNECT to PUBLIC by default, which would let a staging grant's role log in to production on this shared
 * cluster (the server warns at start about any database left that way; the maintenance db `postgres` too).
 */
export const DEMO_SQL: Record<string, string> = {
  orders: `create table if not exists orders (id serial primary key, customer text not null, total_cents int not null, status text not null default 'new');
    insert into orders (customer, total_cents, status) select 'customer ' || g, (g * 1234) % 50000, case when g % 7 = 0 then 'stuck' else 'shipped' end
      from generate_series(1, 50) g where not exists (select 1 from orders);
    revoke connect on database orders from public; revoke connect on database postgres from public;`,
  users: `create table if not exists users (id serial primary key, email text not null, signed_up date not null default current_date);
    insert into users (email) select 'user' || g || '@example.com' from generate_series(1, 25) g where not exists (select 1 from users);
    revoke connect on database users from public;`,
};

/** The MariaDB demo database (idempotent): a few products, for the MariaDB resource's grants to read. */
export const DEMO_MARIADB_SQL = `CREATE TABLE IF NOT EXISTS products (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, price_cents INT NOT NULL);
  INSERT IGNORE INTO products VALUES (1, 'notebook', 450), (2, 'pencil', 120), (3, 'lamp', 2900), (4, 'mug', 800), (5, 'stapler', 1500);`;
/** What a resource and its policy say about how it is granted (the parts of the server config the start-up text needs). */
export interface DemoResource { name: string; kind?: ResourceKind; policy: string }

/**
 * The start-up text's "Try" paragraph, from the config it runs: every resource by the name the tray shows, with its
 * kind and the command its card copies, and where to find a request's id for the approve link — the text once named
 * only the two PostgreSQL databases, and the approve link's id appeared nowhere a newcomer could see.
 */
export function demoTryText(o: { serverUrl: string; resources: DemoResource[]; autoApproved: (policy: string) => boolean; confirmFirst?: (policy: string) => boolean; sockets: Partial<Record<string, string>> }): string {
  const byApproval = o.resources.find((r) => !o.autoApproved(r.policy));
  const instant = o.resources.filter((r) => o.autoApproved(r.policy));
  const what = (r: DemoResource) => `"${r.name}" (${kindWords(r.kind).name}: ${o.confirmFirst?.(r.policy) ? 'confirm it is you, then ' : ''}paste the ${kindWords(r.kind).client} command its card copies)`;
  const lines = [];
  if (byApproval) {
    lines.push(`Try: as alice, request "${byApproval.name}" — it needs one approval from bob (DBA) and one from dave (SRE lead);`,
      `approve it in their tabs, or from any browser with its approve link ${o.serverUrl}/approve/<request id> (the`,
      `"webhook:" lines print it; bob's \`approvals\` below lists the ids), signing in as bob or dave; then connect as alice`,
      `and paste the ${kindWords(byApproval.kind).client} command it copies.`);
  }
  if (instant.length) lines.push('Granted at once while the risk is low:', ...instant.map((r) => `  ${what(r)}`));
  lines.push(`As carol (admin): the Admin section of her tab, or from any browser the admin console ${o.serverUrl}/admin/ —`,
    'live access with Revoke, pending requests, the audit trail.');
  lines.push('Sign-in: the dev IdP asks for the user (pre-filled) and accepts any password.');
  if (o.sockets.alice) {
    lines.push(`From a terminal, the same agents: node bin/stint.mjs --agent ${o.sockets.alice} grants`);
    if (o.sockets.bob) lines.push(`  bob's requests to decide, with their ids: node bin/stint.mjs --agent ${o.sockets.bob} approvals`);
  }
  return lines.join('\n');
}

/** The resources people request (the tray lists them); a services-only one (the CI job's) has its own paragraph. */
export function peopleResources(config: ServerConfig): ServerConfig['resources'] {
  return config.resources.filter((r) => (config.policies[r.policy]?.requesters ?? []).length > 0);
}
