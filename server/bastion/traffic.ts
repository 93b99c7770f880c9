// How many bytes an SSH connection carried each way, and from where, read by the companion from the kernel's TCP
// counters of the connection's socket (`ss -tinp`: tcp_info bytes_received / bytes_acked, and the peer address).
// Why there and not in sshd's log or /proc/<pid>/io: see docs/bastion.md ("Bytes and the client's address").
//
// The recorded pid of a session is its privileged monitor (`sshd: user [priv]`, the key command's parent). After
// authentication the monitor holds exactly one TCP socket, the client's connection (shared with its unprivileged
// child, which also holds the sockets of forwarded channels), so "the established socket this pid holds" is the
// client's connection, whatever else the session forwards.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** What one session's connection carried, as counted by the kernel at `at` (epoch ms). */
export interface Traffic {
  /** Bytes the client sent on the SSH connection (encrypted, SSH framing included). */
  bytesFromClient: number;
  /** Bytes the client acknowledged receiving on the SSH connection. */
  bytesToClient: number;
  /** The client's IP address as this node sees it (for a target host: its bastion). */
  from?: string;
  at: number;
}

/** The kernel's per-socket counters: pid → counters of the established TCP socket(s) it holds. Injected for tests. */
export interface SocketCounters {
  read(): Promise<Map<number, Omit<Traffic, 'at'>>>;
}

const execFileP = promisify(execFile);

/** The client's address from ss's peer column: `1.2.3.4:22`, `[::1]:22`, `[::ffff:1.2.3.4]:22`. */
function peerAddress(peer: string): string | undefined {
  const cut = peer.lastIndexOf(':');
  if (cut <= 0) return undefined;
  const host = peer.slice(0, cut).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}

/** One `ss -HtinpO` line per socket: state, queues, local, peer, users:((…,pid=N,…)), then tcp_info fields. */
export function parseSs(output: string): Map<number, Omit<Traffic, 'at'>> {
  const found = new Map<number, Omit<Traffic, 'at'>>();
  for (const line of output.split('\n')) {
    const columns = line.trim().split(/\s+/);
    if (columns[0] !== 'ESTAB' || columns.length < 6) continue;
    const received = /\bbytes_received:(\d+)/.exec(line);
    const acked = /\bbytes_acked:(\d+)/.exec(line);
    const users = /users:\(\((.*?)\)\)/.exec(line);
    if (!users) continue;
    const traffic = {
      bytesFromClient: received ? Number(received[1]) : 0,
      bytesToClient: acked ? Math.max(0, Number(acked[1]) - 1) : 0, // bytes_acked counts the SYN
      from: peerAddress(columns[4]!),
    };
    for (const match of users[1]!.matchAll(/\bpid=(\d+)/g)) {
      const pid = Number(match[1]);
      // A pid holding several sockets (a session's child: its forwards) is not a recorded pid: keep the first.
      if (!found.has(pid)) found.set(pid, traffic);
    }
  }
  return found;
}

/** The real counters: iproute2's `ss` (root sees every process's sockets; the companion runs as root). */
export const ssCounters: SocketCounters = {
  async read() {
    const { stdout } = await execFileP('ss', ['-HtinpO'], { maxBuffer: 256 * 1024 * 1024, timeout: 10_000 });
    return parseSs(stdout);
  },
};

/**
 * The last counters seen per recorded pid. `sample` reads every socket at once (one `ss` run however many sessions);
 * the companion samples right before it ends a session (exact to that instant) and every `everyMs` meanwhile, so a
 * session that closed on its own before its grant ended has the counters of the last sample before it closed.
 */
export class TrafficWatch {
  private readonly last = new Map<number, Traffic>();

  constructor(private readonly counters: SocketCounters, private readonly now: () => number, private readonly limit = 100_000) {}

  async sample(): Promise<void> {
    const at = this.now();
    for (const [pid, traffic] of await this.counters.read()) {
      this.last.delete(pid); // re-inserted last: the oldest entries are the first to go past the limit
      this.last.set(pid, { ...traffic, at });
    }
    while (this.last.size > this.limit) this.last.delete(this.last.keys().next().value!);
  }

  /** The last counters of this pid's connection, if a sample ever saw it. */
  of(pid: number): Traffic | undefined {
    return this.last.get(pid);
  }

  /** Forget pids whose session's end is on record (a reused pid must not inherit old counters). */
  forget(pids: readonly number[]): void {
    for (const pid of pids) this.last.delete(pid);
  }
}
