// A Secret Service for keytar: a private D-Bus session bus plus gnome-keyring-daemon (secrets component, unlocked),
// with HOME/XDG dirs in a temp dir. Tests point DBUS_SESSION_BUS_ADDRESS at it *before* keytar's first call.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
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
  // Ready when the secrets service answers on the bus: store, read back and clear a probe item. On a loaded 2-core
  // machine the daemon has needed more than 15 s, once more than 30 s, to answer its first store — and in four runs
  // of this wave a 60 s wait expired, once even after a fresh daemon: so the second try starts the bus afresh too (a
  // stalled bus is not cured by a new daemon on it), each probe is cut after 5 s (a store left waiting would hold the
  // loop for D-Bus's own 25 s), and a failure says what the bus and the daemon printed.
  let started: { bus: ReturnType<typeof startProcess>; daemon: ReturnType<typeof startProcess> } | undefined;
  for (const [attempt, waitMs] of [[1, 30_000], [2, 60_000]] as const) {
    const bus = startProcess('/usr/bin/dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=${env.DBUS_SESSION_BUS_ADDRESS}`], { env: { ...process.env, ...env } });
    let daemon: ReturnType<typeof startProcess> | undefined;
    let probe = '(no probe ran)';
    try {
      await waitFor('the D-Bus session bus', () => existsSync(join(dir, 'bus')) || undefined);
      daemon = startProcess('/usr/bin/gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env: { ...process.env, ...env } });
      daemon.child.stdin?.end('harness-keyring-password');
      const running = daemon;
      await waitFor('gnome-keyring secrets service', async () => {
        if (running.child.exitCode !== null) throw new Error(`gnome-keyring-daemon exited: ${running.output()}`);
        const store = await run('secret-tool', ['store', '--label=probe', 'stint-harness', 'probe'], { env: { ...process.env, ...env }, input: 'x', timeout: 5_000 });
        if (store.code !== 0) {
          probe = `secret-tool store exited ${store.code}: ${store.stderr.trim().slice(-300)}`;
          return undefined;
        }
        await run('secret-tool', ['clear', 'stint-harness', 'probe'], { env: { ...process.env, ...env }, timeout: 5_000 });
        return true;
      }, waitMs, 200);
      started = { bus, daemon };
      break;
    } catch (error) {
      const said = `last probe: ${probe}; dbus-daemon: ${bus.output().slice(-1_000) || '(nothing)'}; gnome-keyring-daemon: ${daemon?.output().slice(-1_000) || '(nothing)'}`;
      await daemon?.stop();
      await bus.stop();
      rmSync(join(dir, 'bus'), { force: true });
      if (attempt === 2) throw new Error(`${(error as Error).message} (a fresh bus and daemon were tried too; ${said})`);
    }
  }
  const { bus, daemon } = started!;
  return {
    env,
    stop: async () => {
      await daemon.stop();
      await bus.stop();
    },
  };
}
