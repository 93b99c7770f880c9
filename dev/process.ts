import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { recordPid } from './run-dir';

export interface Started {
  child: ChildProcess;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

// setpriv (util-linux) sets the parent-death signal and execs the service: when whoever started it dies, even by
// kill -9, the kernel kills the service too. It is set after spawn's uid/gid change (which would clear it) and
// survives the exec of an ordinary binary. Where setpriv is missing, the run dir's sweep at the next start remains.
const SETPRIV = '/usr/bin/setpriv';
const dieWithParent = existsSync(SETPRIV);

/**
 * Start a long-running service as its own process group that dies with this process, record its pid for the sweep,
 * keep its output for errors.
 */
export function startProcess(command: string, args: string[], options: SpawnOptions = {}): Started {
  const [file, argv] = dieWithParent ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
  const child = spawn(file, argv, { ...options, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid) recordPid(child.pid);
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > 64_000) log = log.slice(-32_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (error) => { log += `\n[spawn error] ${error.message}`; });
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    child,
    output: () => log,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try { process.kill(-child.pid, signal); } catch { /* already gone */ }
        const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

export function run(command: string, args: string[], options: SpawnOptions & { input?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A child that exits before reading its stdin must not turn into an unhandled EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

export async function mustRun(command: string, args: string[], options: SpawnOptions & { input?: string } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/**
 * What a composed set of services must undo, pushed as each starts and run last-first by `stopAll`: a stop that fails
 * does not keep the others from running (a half-started stack is torn down the same way as a full one).
 */
export function stopList(): { stops: Array<() => Promise<unknown> | unknown>; stopAll: () => Promise<void> } {
  const stops: Array<() => Promise<unknown> | unknown> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await Promise.resolve().then(stop).catch(() => undefined);
  };
  return { stops, stopAll };
}
