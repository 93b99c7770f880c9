// One agent per demo user, each with its own web host, settings and keychain namespace, so a newcomer plays the
// requester and the approvers side by side in one browser (the dev IdP asks who you are at every sign-in).
import { spawn } from 'node:child_process';
import { createAgent } from '../agent/core/compose';
import { ConfSettingsStore } from '../agent/core/settings';
import { terminalLauncher } from '../agent/core/launcher';
import { startWebHost } from '../agent/web/host';
import { listenLocalSocket } from '../agent/core/local-socket';

export const DEMO_ROLES = [
  { user: 'alice', title: 'requester (engineer)' },
  { user: 'bob', title: 'approver (DBA)' },
  { user: 'dave', title: 'approver (SRE lead)' },
  { user: 'carol', title: 'admin (also approves as DBA)' },
] as const;

export interface DemoAgentOptions {
  user: string;
  port: number;
  /** This agent's settings folder. */
  dir: string;
  serverUrl: string;
  issuer: string;
  audience: string;
}

function openInBrowser(url: string): void {
  // A headless machine has nowhere to open it: the UI shows the sign-in link instead.
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY && process.platform === 'linux') return;
  spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true }).on('error', () => undefined).unref();
}

export async function startDemoAgent(options: DemoAgentOptions): Promise<{ url: string; socket: string; stop: () => Promise<void> }> {
  const settings = new ConfSettingsStore({ cwd: options.dir });
  settings.update({ serverUrl: options.serverUrl, issuer: options.issuer, audience: options.audience });
  const agent = createAgent({
    settings,
    profile: `demo-${options.user}`,
    loginHint: options.user,
    dataDir: options.dir,
    launcher: terminalLauncher(),
    openUrl: openInBrowser,
  });
  await agent.start();
  const host = await startWebHost({ staticDir: 'dist/renderer', agent, port: options.port });
  // `stint --agent <socket> connect …` in another terminal reaches this agent (it holds the tunnels and keys).
  const socket = await listenLocalSocket({ agent, dataDir: options.dir });
  return {
    url: host.url,
    socket: socket.path,
    stop: async () => {
      await socket.close();
      await host.close();
      await agent.dispose();
    },
  };
}
