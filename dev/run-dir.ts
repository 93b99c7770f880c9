// Development services (the demo's and the tests') live in one run dir per process tree, and each records the pid of
// what it started. Whoever created the run dir sweeps it at the end: every recorded process is killed and the dir
// removed, so an interrupted demo or test run leaves no process and no directory behind. The run dir is named in
// STINT_RUN_DIR so that child processes (test workers) put their services in the same place.
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, chmodSync, readdirSync, readFileSync, existsSync, appendFileSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const RUN_DIR_ENV = 'STINT_RUN_DIR';

/**
 * True when a user with no relation to the owners (e.g. `postgres`, started by root) can reach `path`: every folder
 * from / down to it grants others search permission. A clone under root's home (mode 0700) or a `mktemp -d` TMPDIR
 * does not.
 */
export function traversableByOthers(path: string): boolean {
  let current = resolve(path);
  for (;;) {
    try {
      if ((statSync(current).mode & 0o001) === 0) return false;
    } catch {
      // Not created yet: what matters is whether its existing ancestors let others through.
    }
    const parent = dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/** Where run dirs go: $TMPDIR when services running as other users can reach it, otherwise /tmp (always 1777). */
export function runDirParent(): string {
  return join(traversableByOthers(tmpdir()) ? tmpdir() : '/tmp', 'stint-run');
}

/** A new run dir under runDirParent(), named in STINT_RUN_DIR for this process and its children. */
export function createRunDir(): string {
  const parent = runDirParent();
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  // Shared with runs of other users and umasks: services running as other users must traverse it.
  try { chmodSync(parent, 0o755); } catch { /* another user's parent: it was made traversable by them */ }
  return useRunDir(mkdtempSync(join(parent, 'run-')));
}

/** Use `dir` (created if missing) as this process tree's run dir, e.g. the demo's own `.stint-demo/run`. */
export function useRunDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  // Services running as other users (postgres) must be able to traverse to their own dirs below it.
  chmodSync(dir, 0o755);
  process.env[RUN_DIR_ENV] = dir;
  return dir;
}

/** This process tree's run dir; one is created when none was set up (a bench or script run on its own). */
export function runDir(): string {
  const dir = process.env[RUN_DIR_ENV];
  return dir ? useRunDir(dir) : createRunDir();
}

export function serviceDir(name: string): string {
  const dir = mkdtempSync(join(runDir(), `${name}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/** Every started process is recorded in the run dir itself, wherever its data lives (the demo keeps PostgreSQL's
 * cluster outside it), so a sweep after a crash of whoever started it still finds it. */
export function recordPid(pid: number): void {
  const pids = join(runDir(), 'pids');
  mkdirSync(pids, { recursive: true });
  writeFileSync(join(pids, String(pid)), '');
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Something created outside the run dir (e.g. under /usr/local/libexec): removed by the sweep too. */
export function registerCleanupPath(path: string): void {
  appendFileSync(join(runDir(), 'cleanup-paths'), `${path}\n`);
}

/** Kill every recorded process under `dir` (their process groups first) and remove it. */
export function sweep(dir: string): { killed: number[] } {
  const killed: number[] = [];
  if (!existsSync(dir)) return { killed };
  const pids = join(dir, 'pids');
  for (const entry of existsSync(pids) ? readdirSync(pids) : []) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) continue;
    try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    killed.push(pid);
  }
  const extra = join(dir, 'cleanup-paths');
  if (existsSync(extra)) {
    for (const path of readFileSync(extra, 'utf8').split('\n').filter(Boolean)) rmSync(path, { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
  // The shared parent goes too once no other run is using it (the demo's run dir has its own parent: left alone).
  if (dirname(dir) === runDirParent()) try { rmdirSync(dirname(dir)); } catch { /* another run is still there */ }
  return { killed };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}
