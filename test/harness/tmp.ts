// Every harness service lives in a temp dir under one root per test run, and records the pid of what it started.
// Normal teardown stops each service; test/harness/global-teardown.ts then kills anything still recorded and
// removes the root, so an interrupted or failed run leaves no process and no directory behind.
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, chmodSync, readdirSync, readFileSync, existsSync, appendFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const HARNESS_PARENT = join(tmpdir(), 'stint-test');

/** The root for this test run; created by the global setup and passed to workers in STINT_TEST_ROOT. */
export function testRoot(): string {
  let root = process.env.STINT_TEST_ROOT;
  if (!root) {
    mkdirSync(HARNESS_PARENT, { recursive: true, mode: 0o755 });
    root = mkdtempSync(join(HARNESS_PARENT, 'run-'));
    process.env.STINT_TEST_ROOT = root;
  }
  mkdirSync(root, { recursive: true });
  // Services running as other users (postgres) must be able to traverse to their own dirs.
  chmodSync(HARNESS_PARENT, 0o755);
  chmodSync(root, 0o755);
  return root;
}

export function serviceDir(name: string): string {
  const dir = mkdtempSync(join(testRoot(), `${name}-`));
  chmodSync(dir, 0o755);
  return dir;
}

export function recordPid(dir: string, pid: number): void {
  writeFileSync(join(dir, 'harness.pid'), String(pid));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Something a test created outside the run's root (e.g. under /usr/local/libexec): removed by the sweep too. */
export function registerCleanupPath(path: string): void {
  appendFileSync(join(testRoot(), 'cleanup-paths'), `${path}\n`);
}

/** Kill every recorded process under root (their process groups first) and remove the root. */
export function sweep(root: string): { killed: number[] } {
  const killed: number[] = [];
  if (!existsSync(root)) return { killed };
  for (const entry of readdirSync(root)) {
    const pidFile = join(root, entry, 'harness.pid');
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) continue;
    try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    killed.push(pid);
  }
  const extra = join(root, 'cleanup-paths');
  if (existsSync(extra)) {
    for (const path of readFileSync(extra, 'utf8').split('\n').filter(Boolean)) rmSync(path, { recursive: true, force: true });
  }
  rmSync(root, { recursive: true, force: true });
  // The shared parent goes too once no other run is using it.
  try { rmdirSync(dirname(root)); } catch { /* another run's root is still there */ }
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
