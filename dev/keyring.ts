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
  // Ready when the secrets service answers on the bus: store, read back and clear a probe item. On a loaded 2-core
  // machine the daemon has needed more than 15 s, once more than 30 s, to answer its first store — and in three runs
  // of this wave a 60 s wait expired (stalled or only slow: not known). So each probe is cut after 5 s (a store left
  // waiting would hold the loop for D-Bus's own 25 s), and a daemon silent for 30 s gets one fresh start with 60 s.
  let daemon: ReturnType<typeof startProcess> | undefined;
  for (const waitMs of [30_000, 60_000]) {
    daemon = startProcess('/usr/bin/gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env: { ...process.env, ...env } });
    daemon.child.stdin?.end('harness-keyring-password');
    const started = daemon;
    try {
      await waitFor('gnome-keyring secrets service', async () => {
        if (started.child.exitCode !== null) throw new Error(`gnome-keyring-daemon exited: ${started.output()}`);
        const store = await run('secret-tool', ['store', '--label=probe', 'stint-harness', 'probe'], { env: { ...process.env, ...env }, input: 'x', timeout: 5_000 });
        if (store.code !== 0) return undefined;
        await run('secret-tool', ['clear', 'stint-harness', 'probe'], { env: { ...process.env, ...env }, timeout: 5_000 });
        return true;
      }, waitMs, 200);
      break;
    } catch (error) {
      await started.stop();
      daemon = undefined;
      if (waitMs === 60_000) {
        await bus.stop();
        throw error;
      }
    }
  }
  const running = daemon!;
  return {
    env,
    stop: async () => {
      await running.stop();
      await bus.stop();
    },
  };
}
