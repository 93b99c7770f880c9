// Who holds a loopback TCP port: so "address in use" can name the process to stop instead of leaving the user to
// guess. Linux only (reads /proc); elsewhere the answer is "unknown", never an error.
import { createServer } from 'node:net';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface PortHolder {
  pid: number;
  command: string;
}

/** True when nothing listens on 127.0.0.1:port (we could bind it). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = readFileSync(table, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 is the socket's inode.
      const localPort = fields[1]?.split(':')[1];
      if (localPort && Number.parseInt(localPort, 16) === port && fields[3] === '0A' && fields[9]) inodes.add(fields[9]);
    }
  }
  return inodes;
}

/** The process listening on `port`, when this system lets us see it. */
export function portHolder(port: number): PortHolder | undefined {
  const inodes = listeningInodes(port);
  if (!inodes.size) return undefined;
  let pids: string[];
  try { pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name)); } catch { return undefined; }
  for (const pid of pids) {
    let fds: string[];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link: string;
      try { link = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode && inodes.has(inode)) {
        let command = '';
        try { command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* exited */ }
        return { pid: Number(pid), command: command.length > 160 ? `${command.slice(0, 157)}…` : command };
      }
    }
  }
  return undefined;
}

/** Refuse with words that name the holder when any of `ports` is taken. */
export async function assertPortsFree(ports: Record<string, number>, advice: string): Promise<void> {
  // Grouped by holder: one demo holds many ports, and the user needs its pid and command line once.
  const byHolder = new Map<string, string[]>();
  for (const [what, port] of Object.entries(ports)) {
    if (await portIsFree(port)) continue;
    const holder = portHolder(port);
    const who = holder ? `process ${holder.pid} (${holder.command || 'no command line'})` : 'another program';
    byHolder.set(who, [...(byHolder.get(who) ?? []), `${port} (${what})`]);
  }
  if (!byHolder.size) return;
  const lines = [...byHolder].map(([who, taken]) => `${taken.length === 1 ? 'port' : 'ports'} ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} in use by ${who}`);
  throw new Error(`${lines.join('; ')}. ${advice}`);
}
