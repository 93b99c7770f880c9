// The demo's grant-server configuration (docs/config.example.yaml with this run's ports and paths) and sample data.
// Two resources show the two paths of the product: production (step-up, two approvals from different groups) and
// staging (instant when the risk is low).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';

/** The example configuration admin.md points to; the demo loads it with each run's ports and paths. */
export const EXAMPLE_CONFIG = new URL('../docs/config.example.yaml', import.meta.url);

// webauthnOrigins: where passkeys may be used — every web host the demo serves and, for the tray app, the grant
// server's own origin (the desktop app runs its step-up page there); default: the one web port.
export function demoConfigYaml(o: { ports: { server: number; web: number; sshd: number; pg: number }; dir: string; audience: string; issuer: string; webauthnOrigins?: string[] }): string {
  const doc = parseDocument(readFileSync(EXAMPLE_CONFIG, 'utf8'));
  doc.setIn(['server', 'url'], `http://localhost:${o.ports.server}`);
  doc.setIn(['server', 'listen', 'port'], o.ports.server);
  doc.setIn(['identity', 'issuer'], o.issuer);
  doc.setIn(['identity', 'audience'], o.audience);
  doc.setIn(['storage', 'url'], `sqlite:${o.dir}/stint.db`);
  doc.setIn(['webauthn', 'origins'], doc.createNode(o.webauthnOrigins ?? [`http://localhost:${o.ports.web}`], { flow: true }));
  doc.setIn(['bastions', 'main', 'port'], o.ports.sshd);
  const resources = doc.getIn(['resources']) as { items: unknown[] };
  for (let i = 0; i < resources.items.length; i++) doc.setIn(['resources', i, 'target', 'port'], o.ports.pg);
  return `# Written by npm start from docs/config.example.yaml (this run's ports and paths) — DEV ONLY.\n${doc.toString({ lineWidth: 0 })}`;
}

/** Idempotent sample schema and rows for each demo database. */
export const DEMO_SQL: Record<string, string> = {
  orders: `create table if not exists orders (id serial primary key, customer text not null, total_cents int not null, status text not null default 'new');
    insert into orders (customer, total_cents, status) select 'customer ' || g, (g * 1234) % 50000, case when g % 7 = 0 then 'stuck' else 'shipped' end
      from generate_series(1, 50) g where not exists (select 1 from orders);`,
  users: `create table if not exists users (id serial primary key, email text not null, signed_up date not null default current_date);
    insert into users (email) select 'user' || g || '@example.com' from generate_series(1, 25) g where not exists (select 1 from users);`,
};
