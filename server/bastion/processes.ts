// The processes the companion ends: an sshd serving one connection and everything it started, never sshd's listener
// nor another program (a recorded pid may have been reused since).
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** What the companion needs to know about processes; injected so tests can use the real /proc or a fake. */
export interface ProcessTable {
  /** Executable name (/proc/<pid>/comm), undefined when the process does not exist. */
  name(pid: number): string | undefined;
  /** Command line as shown by ps (sshd sets its title, e.g. `sshd: user [priv]`). */
  title(pid: number): string | undefined;
  /** Direct children. */
  children(pid: number): number[];
  /** Exists and is not a zombie (an exited child waiting to be reaped needs no signal). */
  running(pid: number): boolean;
}

export const procfs: ProcessTable = {
  name(pid) {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return undefined;
    }
  },
  title(pid) {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
    } catch {
      return undefined;
    }
  },
  children(pid) {
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // Field 4 (ppid) follows the parenthesised name, which may itself contain spaces or parentheses.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) found.push(Number(entry));
      } catch { /* exited while scanning */ }
    }
    return found;
  },
  running(pid) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  },
};

/** What ending some recorded pids came to: which were open (and are now ended), which were gone, what was signalled. */
export interface Terminated { open: number[]; gone: number[]; signalled: number[] }

export interface TerminatorOptions {
  processes: ProcessTable;
  kill: (pid: number, signal: NodeJS.Signals) => void;
  /** SIGTERM, then SIGKILL whatever is left after this long. */
  graceMs: number;
  /** Runs right before the first signal when there is anything to end (the traffic counters' last reading). */
  beforeSignal: () => Promise<unknown>;
}

/** Ends the connections of recorded sshd pids, each with its whole process tree. */
export function terminator(options: TerminatorOptions): (pids: number[]) => Promise<Terminated> {
  const { processes, kill } = options;

  /** The pid plus all its descendants, if it is a per-connection sshd (never the listener, never another program). */
  function connectionTree(pid: number): number[] {
    if (processes.name(pid) !== 'sshd') return [];
    const title = processes.title(pid) ?? '';
    if (title.includes('[listener]') || !title.startsWith('sshd:')) return [];
    const tree = [pid];
    for (let i = 0; i < tree.length; i += 1) tree.push(...processes.children(tree[i]!));
    return tree;
  }

  return async (pids) => {
    const trees = pids.map((pid) => ({ pid, tree: connectionTree(pid) }));
    const targets = [...new Set(trees.flatMap((t) => t.tree))];
    if (targets.length) await options.beforeSignal();
    for (const pid of targets) {
      try { kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    const deadline = Date.now() + options.graceMs;
    let alive = targets;
    while (alive.length && Date.now() < deadline) {
      await delay(20);
      alive = alive.filter((pid) => processes.running(pid));
    }
    for (const pid of alive) {
      try { kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    return { open: trees.filter((t) => t.tree.length > 0).map((t) => t.pid), gone: trees.filter((t) => t.tree.length === 0).map((t) => t.pid), signalled: targets };
  };
}
