// Which agent process holds a grant: written into the grant's keychain record, so that an agent starting beside
// another one of the same profile (two shells, a CLI beside the tray) tells a crashed run's leftovers — wiped — from
// the records of a process that is alive and holds them — left alone. A pid alone could be reused by an unrelated
// process after a crash; on Linux the process's start time (/proc/<pid>/stat) pins it down, elsewhere the pid is
// what there is.
import { readFileSync } from 'node:fs';

export interface Holder {
  pid: number;
  /** The process's start time in clock ticks since boot (Linux), when it can be read. */
  started?: string;
}

function startTimeOf(pid: number): string | undefined {
  try {
    // The command name (field 2) is in parentheses and may hold spaces: count the fields after its closing one.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function thisProcess(): Holder {
  const started = startTimeOf(process.pid);
  return { pid: process.pid, ...(started ? { started } : {}) };
}

/** Whether the holder is a running process: the same pid, started at the same instant where that can be told. */
export function isRunning(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch {
    // ESRCH: gone. EPERM: another user's process, so not an agent of ours (keychains are per user).
    return false;
  }
  if (holder.started === undefined) return true;
  const started = startTimeOf(holder.pid);
  return started === undefined || started === holder.started;
}

export function parseHolder(value: unknown): Holder | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const { pid, started } = value as { pid?: unknown; started?: unknown };
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, ...(typeof started === 'string' ? { started } : {}) };
}
