// `npm start`: Stint on its embedded default. Starts what exists of the product locally and opens the UI:
// the Electron tray app where its binary is installed, otherwise the web host (same agent, same UI) with its URL.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDevIdp } from '../server/dev-idp/index';
import { startWebHost } from '../electron/hosts/web/host';

const DEMO_IDP_PORT = Number(process.env.STINT_DEMO_IDP_PORT ?? 7801);

async function main(): Promise<void> {
  if (!existsSync('dist/renderer/index.html')) {
    console.log('start: building the UI (vite build)');
    execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
  }
  const idp = await startDevIdp({ port: DEMO_IDP_PORT, audience: 'http://localhost/stint-api' });
  console.log(`start: dev OpenID provider (DEV ONLY, any password) at ${idp.issuer} — users: ${idp.users.map((u) => u.sub).join(', ')}`);
  const hasElectron = existsSync(join('node_modules', 'electron', 'path.txt'));
  if (!hasElectron) console.log('start: the Electron binary is not installed here (its download server is unreachable), so Stint runs in the web host instead');
  const host = await startWebHost({ staticDir: 'dist/renderer' });
  console.log(`\nStint is running. Open: ${host.url}\n(Ctrl+C to stop)`);
  const stop = async () => {
    await host.close();
    await idp.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error) => {
  console.error(`start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
