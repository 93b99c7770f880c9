// A Secret Service for keytar: a private D-Bus session bus plus gnome-keyring-daemon (secrets component, unlocked),
// with HOME/XDG dirs in a temp dir. Tests point DBUS_SESSION_BUS_ADDRESS at it *before* keytar's first call.
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { serviceDir, waitFor } from './run-dir';
import { run, startProcess } from './process';

export interface KeyringInstance {
  env: { DBUS_SESSION_BUS_ADDRESS: string; HOME: string; XDG_DATA_HOME: string; XDG_CACHE_HOME: string; XDG_RUNTIME_DIR: string };
  stop: () => Promise<void>;
}

export async function startKeyring(): Promise<KeyringInstance> {
  for (const bin of ['/usr/bin/dbus-daemon', '/usr/bin/gnome-keyring-daemon']) {
    if (!existsSync(bin)) throw new Error(`${bin} not found: run build/prereqs.sh (packages dbus, gnome-keyring)`);
  }
  const dir = serviceDir('keyring');
  const home = join(dir, 'home');
  const env = {
    HOME: home,
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'bus')}`,
  };
  for (const d of [env.XDG_DATA_HOME, env.XDG_CACHE_HOME, env.XDG_RUNTIME_DIR]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const bus = startProcess('/usr/bin/dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=${env.DBUS_SESSION_BUS_ADDRESS}`], { env: { ...process.env, ...env } });
  await waitFor('the D-Bus session bus', () => existsSync(join(dir, 'bus')) || undefined);
  const daemon = startProcess('/usr/bin/gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env: { ...process.env, ...env } });
  daemon.child.stdin?.end('harness-keyring-password');
  // Ready when the secrets service answers on the bus: store, read back and clear a probe item.
  await waitFor('gnome-keyring secrets service', async () => {
    if (daemon.child.exitCode !== null) throw new Error(`gnome-keyring-daemon exited: ${daemon.output()}`);
    const store = await run('secret-tool', ['store', '--label=probe', 'stint-harness', 'probe'], { env: { ...process.env, ...env }, input: 'x' });
    if (store.code !== 0) return undefined;
    await run('secret-tool', ['clear', 'stint-harness', 'probe'], { env: { ...process.env, ...env } });
    return true;
    // 60 s: on a loaded 2-core machine the daemon has needed more than 15 s, and once more than 30 s (npm ci and a
    // browser test running beside a fresh demo), to answer its first store.
  }, 60_000, 200);
  return {
    env,
    stop: async () => {
      await daemon.stop();
      await bus.stop();
    },
  };
}
