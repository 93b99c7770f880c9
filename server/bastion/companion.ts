// The kill companion, run as root on the bastion host beside sshd. sshd checks keys (and expiry-time) only at login,
// so a live SSH connection outlives its grant; this process follows the grant server's end events and terminates
// the sshd processes that serve each ended grant (the key command reported them), closing the connection.
//
//   tsx server/bastion/companion.ts [-f /etc/stint/bastion.env]
//
// It reads STINT_SERVER_URL and STINT_BASTION_TOKEN from the same file as the key command. The live feed is SSE
// (GET /v1/bastion/events); on every (re)connect it first catches up with GET /v1/bastion/ended?since=, so an end
// that happened while it was disconnected is still acted on.
// After each end it tells the server what became of the grant's sessions (POST /v1/bastion/sessions/ended): those it
// found open and killed, and those that had closed already. The server puts both in the audit log. A report the
// server did not take is kept and sent again after the next (re)connect.
// With each session's end goes what its connection carried each way and the client's address, from the kernel's TCP
// counters (traffic.ts): read right before a session is ended, and every few seconds meanwhile for those that close
// on their own. A rekey (the grant taken back with a new key) sends an event too (`cause: 'rekeyed'`) naming the
// sessions opened with the old key: they are ended the same way, while the grant goes on.
// The companion also keeps, every few seconds, the deadline of each grant with sessions here (GET /v1/bastion/live),
// so that a grant server frozen or down across a deadline does not leave them running (issue #21): a little after a
// deadline it asks again, and only when no server answers does it end the sessions itself. A deadline an extension
// moved is re-read before anything is cut, so an extension it missed never ends a session early; what it ended alone
// is reported with the grant's end once the server sends it.
import { readFileSync, readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createParser } from 'eventsource-parser';
import { systemClock, type Clock } from '../../shared/domain/clock';
import { ssCounters, TrafficWatch, type SocketCounters } from './traffic';

export interface EndedEvent {
  grantId: string;
  keyBase64: string;
  at: string;
  pids: number[];
  /** Set when the grant goes on with a new key: `pids` are the sessions opened with the old one. */
  cause?: 'rekeyed';
}

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

export interface CompanionLogger {
  info: (obj: object, msg?: string) => void;
  warn: (obj: object, msg?: string) => void;
  error: (obj: object, msg?: string) => void;
}

export interface CompanionOptions {
  serverUrl: string;
  token: string;
  fetch?: typeof fetch;
  kill?: (pid: number, signal: NodeJS.Signals) => void;
  processes?: ProcessTable;
  /** The wall clock the first catch-up looks back from. */
  clock?: Pick<Clock, 'now'>;
  logger?: CompanionLogger;
  /** At start, act on ends this far back (connections made before a companion restart). Default 10 min. */
  lookbackMs?: number;
  /** SIGTERM, then SIGKILL whatever is left after this long. Default 2 s. */
  killGraceMs?: number;
  /** Reconnect when the stream is silent this long (server heartbeats every 15 s). Default 45 s. */
  idleTimeoutMs?: number;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The kernel's TCP counters per pid (default: `ss`). */
  sockets?: SocketCounters;
  /** How often the counters of live sessions are read, for those that close on their own. Default 5 s; 0: never. */
  sampleEveryMs?: number;
  /** Called after an ended grant's processes were handled (for tests and metrics). */
  onHandled?: (event: EndedEvent, killed: number[]) => void;
  /** Called after the server took the report of an ended grant's sessions (for tests). */
  onReported?: (report: SessionsEndedReport) => void;
  /** How often the live grants' deadlines are read (GET /live). Default 2 s; 0: never (only the server's ends count). */
  liveEveryMs?: number;
  /** After a known deadline, how long the server's own end has to arrive before the companion asks. Default 300 ms. */
  deadlineGraceMs?: number;
  /** How long an answer to that question may take before the companion ends the sessions itself. Default 500 ms. */
  confirmTimeoutMs?: number;
  /** Called after the companion ended a grant's sessions itself, no server having answered at its deadline. */
  onEndedAlone?: (grantId: string, killed: number[]) => void;
}

/** What became of an ended grant's recorded sessions, as the companion tells the server. */
export interface SessionsEndedReport {
  grantId: string;
  /** Recorded sshd pids whose connection was still open: the companion ended it. */
  killed: number[];
  /** Recorded sshd pids whose connection had already closed. */
  closed: number[];
  /** What each session's connection carried and where it came from, for the sessions whose counters were seen. */
  traffic?: SessionTraffic[];
  /** Set when the sessions were ended because the grant was taken back with a new key (the grant goes on). */
  cause?: 'rekeyed';
}

/** One session's counters as reported: for a killed session read right before it was ended, else the last sample. */
export interface SessionTraffic {
  pid: number;
  bytesFromClient: number;
  bytesToClient: number;
  from?: string;
  /** When the kernel's counters were read (ISO). */
  countedAt: string;
}

/** Reports kept for a server that did not take them, at most (the oldest go first). */
const MAX_UNSENT_REPORTS = 1_000;
/** A far deadline is waited for in steps of at most this (setTimeout's limit is ~24.8 days). */
const MAX_TIMER_MS = 3_600_000;

/** A grant with live sessions on this bastion, as GET /live lists it. */
interface LiveGrant { grantId: string; endsAt: string; pids: number[]; afterMs?: number }

/** What the companion did on its own at a deadline, kept to be reported with the grant's end. */
interface EndedAlone { killed: number[]; closed: number[]; traffic: SessionTraffic[] }

export interface Companion {
  /** Resolves once the first catch-up after connecting has been processed. */
  ready: Promise<void>;
  stop: () => Promise<void>;
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

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  // The listener goes when the wait ends either way: a long outage means many waits on the one stop signal.
  const done = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', done);
    resolve();
  };
  const timer = setTimeout(done, ms);
  signal?.addEventListener('abort', done, { once: true });
});

/** Server-sent events from a byte stream as (event, data) pairs; framing by eventsource-parser, as in the agent. */
export async function* readSse(body: ReadableStream<Uint8Array>, onActivity: () => void): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  const ready: { event: string; data: string }[] = [];
  const parser = createParser({ onEvent: (message) => ready.push({ event: message.event ?? 'message', data: message.data }) });
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onActivity();
      parser.feed(decoder.decode(value, { stream: true }));
      while (ready.length) yield ready.shift()!;
    }
  } finally {
    reader.releaseLock();
  }
}

function isLiveGrant(value: unknown): value is LiveGrant {
  const v = value as LiveGrant;
  return typeof v === 'object' && v !== null && typeof v.grantId === 'string' && !Number.isNaN(Date.parse(v.endsAt))
    && Array.isArray(v.pids) && v.pids.every((p) => Number.isInteger(p) && p > 1)
    && (v.afterMs === undefined || (Number.isInteger(v.afterMs) && v.afterMs >= 0 && v.afterMs <= 60_000));
}

function isEndedEvent(value: unknown): value is EndedEvent {
  const v = value as EndedEvent;
  return typeof v === 'object' && v !== null && typeof v.grantId === 'string' && typeof v.at === 'string'
    && Array.isArray(v.pids) && v.pids.every((p) => Number.isInteger(p) && p > 1) && (v.cause === undefined || v.cause === 'rekeyed');
}

export function startCompanion(options: CompanionOptions): Companion {
  const doFetch = options.fetch ?? fetch;
  const kill = options.kill ?? ((pid: number, signal: NodeJS.Signals) => process.kill(pid, signal));
  const processes = options.processes ?? procfs;
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const lookbackMs = options.lookbackMs ?? 600_000;
  const killGraceMs = options.killGraceMs ?? 2_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const minBackoffMs = options.minBackoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const base = `${options.serverUrl.replace(/\/$/, '')}/v1/bastion`;
  const headers = { authorization: `Bearer ${options.token}` };
  const stopping = new AbortController();
  /** grantId → pids already handled (a later event for the same grant may carry new pids). */
  const handled = new Map<string, { at: number; pids: Set<number> }>();
  /** The latest end seen, epoch ms: where the next catch-up starts. */
  let since = clock.now() - lookbackMs;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const pending = new Set<Promise<void>>();
  const traffic = new TrafficWatch(options.sockets ?? ssCounters, () => clock.now());
  /** Read the counters; a failure (no `ss`, not root) costs the rows their bytes, never the kill. */
  const sample = () => traffic.sample().catch((error: unknown) => logger?.warn({ err: String(error) }, 'could not read the ssh connections\' byte counters'));
  const sampleEveryMs = options.sampleEveryMs ?? 5_000;
  const sampler = sampleEveryMs > 0 ? setInterval(() => void sample(), sampleEveryMs) : undefined;
  sampler?.unref();
  const liveEveryMs = options.liveEveryMs ?? 2_000;
  const graceMs = options.deadlineGraceMs ?? 300;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 500;
  /**
   * grantId → its deadline and pids as the server last listed them, and the timer that acts at the deadline. `endsAt`
   * is when this node acts: the deadline, or later on a bastion whose target host's companion goes first.
   */
  const deadlines = new Map<string, { endsAt: number; pids: number[]; timer: NodeJS.Timeout }>();
  /** Ends the companion carried out alone, until the server's end of the grant comes to be reported with them. */
  const endedAlone = new Map<string, { at: number; done: Promise<EndedAlone> }>();

  /** The pid plus all its descendants, if it is a per-connection sshd (never the listener, never another program). */
  function connectionTree(pid: number): number[] {
    if (processes.name(pid) !== 'sshd') return [];
    const title = processes.title(pid) ?? '';
    if (title.includes('[listener]') || !title.startsWith('sshd:')) return [];
    const tree = [pid];
    for (let i = 0; i < tree.length; i += 1) tree.push(...processes.children(tree[i]!));
    return tree;
  }

  /** End the connections of these recorded pids: which were open (and are now ended), which were gone, what was signalled. */
  async function terminate(pids: number[]): Promise<{ open: number[]; gone: number[]; signalled: number[] }> {
    const trees = pids.map((pid) => ({ pid, tree: connectionTree(pid) }));
    const targets = [...new Set(trees.flatMap((t) => t.tree))];
    // The counters of the connections about to end, as late as possible: what they carried up to the cut.
    if (targets.length) await sample();
    for (const pid of targets) {
      try { kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    const deadline = Date.now() + killGraceMs;
    let alive = targets;
    while (alive.length && Date.now() < deadline) {
      await sleep(20);
      alive = alive.filter((pid) => processes.running(pid));
    }
    for (const pid of alive) {
      try { kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    return { open: trees.filter((t) => t.tree.length > 0).map((t) => t.pid), gone: trees.filter((t) => t.tree.length === 0).map((t) => t.pid), signalled: targets };
  }

  const unsent: SessionsEndedReport[] = [];
  let reporting: Promise<void> = Promise.resolve();

  /** Send the reports not yet taken, oldest first; stop at the first the server does not take (kept for later). */
  function sendReports(): Promise<void> {
    reporting = reporting.then(async () => {
      while (unsent.length > 0 && !stopping.signal.aborted) {
        const report = unsent[0]!;
        try {
          const response = await doFetch(`${base}/sessions/ended`, {
            method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(report), signal: AbortSignal.timeout(10_000),
          });
          // 4xx other than 429: the server will never take this one (unknown grant, malformed): do not hold the rest.
          if (!response.ok && (response.status >= 500 || response.status === 429)) throw new Error(`sessions/ended answered ${response.status}`);
          if (!response.ok) logger?.warn({ grantId: report.grantId, status: response.status }, 'the server refused the report of ended ssh sessions');
          else options.onReported?.(report);
          unsent.shift();
        } catch (error) {
          logger?.warn({ grantId: report.grantId, err: String(error) }, 'could not report ended ssh sessions; will retry after reconnecting');
          return;
        }
      }
    });
    return reporting;
  }

  function report(entry: SessionsEndedReport): void {
    unsent.push(entry);
    if (unsent.length > MAX_UNSENT_REPORTS) unsent.shift();
    void sendReports();
  }

  function handle(event: EndedEvent): void {
    const at = Date.parse(event.at);
    if (!Number.isNaN(at) && at > since) since = at;
    const seen = handled.get(event.grantId) ?? { at: Date.now(), pids: new Set<number>() };
    handled.set(event.grantId, seen);
    const fresh = event.pids.filter((pid) => !seen.pids.has(pid));
    fresh.forEach((pid) => seen.pids.add(pid));
    // What the companion ended alone at the deadline (the server was not answering) is reported with this end.
    const alone = event.cause ? undefined : endedAlone.get(event.grantId);
    if (!event.cause) {
      endedAlone.delete(event.grantId);
      unwatch(event.grantId);
    }
    const work = (async () => {
      const before = await alone?.done;
      const ended = fresh.length ? await terminate(fresh) : { open: [], gone: [], signalled: [] };
      if (ended.signalled.length) logger?.info({ grantId: event.grantId, pids: ended.signalled }, 'ended grant: closed its ssh connections');
      options.onHandled?.(event, ended.signalled);
      if (fresh.length || before) {
        const counted = [...(before?.traffic ?? []), ...countedFor(fresh)];
        report({
          grantId: event.grantId, killed: [...(before?.killed ?? []), ...ended.open], closed: [...(before?.closed ?? []), ...ended.gone],
          ...(counted.length ? { traffic: counted } : {}), ...(event.cause ? { cause: event.cause } : {}),
        });
      }
    })().catch((error: unknown) => logger?.error({ grantId: event.grantId, err: String(error) }, 'could not end ssh connections'));
    pending.add(work);
    void work.finally(() => pending.delete(work));
    // Keep the memory bounded: forget grants handled long ago.
    const horizon = Date.now() - 2 * lookbackMs - 3_600_000;
    for (const [grantId, entry] of handled) if (entry.at < horizon) handled.delete(grantId);
    for (const [grantId, entry] of endedAlone) if (entry.at < horizon) endedAlone.delete(grantId);
  }

  /** The counters last read for these pids, in the report's shape; they are forgotten here. */
  function countedFor(pids: number[]): SessionTraffic[] {
    const counted = pids.flatMap((pid) => {
      const t = traffic.of(pid);
      return t ? [{ pid, bytesFromClient: t.bytesFromClient, bytesToClient: t.bytesToClient, ...(t.from ? { from: t.from } : {}), countedAt: new Date(t.at).toISOString() }] : [];
    });
    traffic.forget(pids);
    return counted;
  }

  function track(work: Promise<unknown>): void {
    const tracked = work.then(() => undefined, () => undefined);
    pending.add(tracked);
    void tracked.finally(() => pending.delete(tracked));
  }

  let refreshing: Promise<boolean> | undefined;
  /**
   * Read the live grants' deadlines (one request at a time, shared by whoever asks meanwhile). The answer is the whole
   * truth for this bastion: a grant it no longer lists has ended (its end event follows) or has no sessions here.
   * False when no answer came in time: what was known stays.
   */
  function refreshLive(): Promise<boolean> {
    refreshing ??= (async () => {
      try {
        const response = await doFetch(`${base}/live`, { headers, signal: AbortSignal.timeout(confirmTimeoutMs) });
        if (!response.ok) return false;
        const body = (await response.json()) as { grants?: unknown[] };
        if (stopping.signal.aborted) return false;
        const listed = new Map((body.grants ?? []).filter(isLiveGrant).map((g) => [g.grantId, g] as const));
        for (const grantId of deadlines.keys()) if (!listed.has(grantId)) unwatch(grantId);
        for (const g of listed.values()) watch(g.grantId, Date.parse(g.endsAt) + (g.afterMs ?? 0), g.pids);
        return true;
      } catch {
        return false;
      }
    })().finally(() => { refreshing = undefined; });
    return refreshing;
  }

  function watch(grantId: string, endsAt: number, pids: number[]): void {
    const known = deadlines.get(grantId);
    if (known?.endsAt === endsAt) {
      known.pids = pids;
      return;
    }
    if (known) clearTimeout(known.timer);
    deadlines.set(grantId, { endsAt, pids, timer: arm(grantId, endsAt + graceMs) });
  }

  function unwatch(grantId: string): void {
    clearTimeout(deadlines.get(grantId)?.timer);
    deadlines.delete(grantId);
  }

  function arm(grantId: string, due: number): NodeJS.Timeout {
    const timer = setTimeout(() => track(atDeadline(grantId, due)), Math.min(MAX_TIMER_MS, Math.max(0, due - clock.now())));
    timer.unref();
    return timer;
  }

  /**
   * A grant's deadline (plus the grace) has passed and no end came: ask the server. It answering is enough — it ends
   * the grant itself, or the deadline moved and the grant is watched anew — and a grant it still lists as not ended
   * is asked about again shortly. No answer in time: the server is frozen or down, and the sessions end here.
   */
  async function atDeadline(grantId: string, due: number): Promise<void> {
    const known = deadlines.get(grantId);
    if (!known || stopping.signal.aborted) return;
    if (clock.now() < due) {
      known.timer = arm(grantId, due);
      return;
    }
    if (await refreshLive()) {
      const still = deadlines.get(grantId);
      if (still?.endsAt === known.endsAt) still.timer = arm(grantId, clock.now() + graceMs);
      return;
    }
    if (deadlines.get(grantId) !== known) return; // an end event came meanwhile
    unwatch(grantId);
    endAlone(grantId, known.pids);
  }

  /** End a grant's sessions without the server; the result waits for the grant's end event to be reported. */
  function endAlone(grantId: string, pids: number[]): void {
    const seen = handled.get(grantId) ?? { at: Date.now(), pids: new Set<number>() };
    handled.set(grantId, seen);
    const fresh = pids.filter((pid) => !seen.pids.has(pid));
    if (fresh.length === 0) return;
    fresh.forEach((pid) => seen.pids.add(pid));
    const earlier = endedAlone.get(grantId)?.done;
    const done = (async (): Promise<EndedAlone> => {
      const ended = await terminate(fresh);
      logger?.warn({ grantId, pids: ended.signalled }, 'no grant server answered at the grant\'s deadline: closed its ssh connections alone');
      options.onEndedAlone?.(grantId, ended.signalled);
      const mine = { killed: ended.open, closed: ended.gone, traffic: countedFor(fresh) };
      const before = await earlier;
      return before ? { killed: [...before.killed, ...mine.killed], closed: [...before.closed, ...mine.closed], traffic: [...before.traffic, ...mine.traffic] } : mine;
    })();
    done.catch((error: unknown) => logger?.error({ grantId, err: String(error) }, 'could not end ssh connections'));
    endedAlone.set(grantId, { at: Date.now(), done });
    track(done);
  }

  async function catchUp(signal: AbortSignal): Promise<void> {
    // Overlap by a few seconds: ends are de-duplicated, and clocks or commit order may differ slightly.
    const from = new Date(since - 5_000).toISOString();
    const response = await doFetch(`${base}/ended?since=${encodeURIComponent(from)}`, { headers, signal });
    if (!response.ok) throw new Error(`ended?since answered ${response.status}`);
    const body = (await response.json()) as { events?: unknown[] };
    for (const event of body.events ?? []) if (isEndedEvent(event)) handle(event);
  }

  async function follow(): Promise<void> {
    let backoff = minBackoffMs;
    while (!stopping.signal.aborted) {
      const attempt = new AbortController();
      const onStop = () => attempt.abort();
      stopping.signal.addEventListener('abort', onStop, { once: true });
      let idle: NodeJS.Timeout | undefined;
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => attempt.abort(), idleTimeoutMs);
      };
      try {
        touch();
        const response = await doFetch(`${base}/events`, { headers: { ...headers, accept: 'text/event-stream' }, signal: attempt.signal });
        if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
        // Subscribed first, then catch up: nothing can fall between the two.
        await catchUp(attempt.signal);
        // The deadlines as they are now, extensions made while the stream was down included.
        void refreshLive();
        markReady();
        void sendReports();
        backoff = minBackoffMs;
        for await (const message of readSse(response.body, touch)) {
          if (message.event !== 'ended') continue;
          try {
            const event: unknown = JSON.parse(message.data);
            if (isEndedEvent(event)) handle(event);
          } catch { /* a malformed event is skipped; the next catch-up covers it */ }
        }
      } catch (error) {
        if (!stopping.signal.aborted) logger?.warn({ err: String(error) }, 'grant server stream lost; reconnecting');
      } finally {
        clearTimeout(idle);
        stopping.signal.removeEventListener('abort', onStop);
        attempt.abort();
      }
      if (stopping.signal.aborted) break;
      await sleep(backoff, stopping.signal);
      backoff = Math.min(maxBackoffMs, backoff * 2);
    }
  }

  const poller = liveEveryMs > 0 ? setInterval(() => void refreshLive(), liveEveryMs) : undefined;
  poller?.unref();
  const loop = follow();
  return {
    ready,
    stop: async () => {
      stopping.abort();
      clearInterval(sampler);
      clearInterval(poller);
      for (const grantId of [...deadlines.keys()]) unwatch(grantId);
      await loop;
      await Promise.all([...pending]);
      await reporting;
    },
  };
}

/** KEY=value lines, as written for the key command. */
export function readBastionEnv(path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

async function main(argv: string[]): Promise<void> {
  const flag = argv.indexOf('-f');
  const path = flag >= 0 && argv[flag + 1] ? argv[flag + 1]! : '/etc/stint/bastion.env';
  const env = readBastionEnv(path);
  const serverUrl = env.STINT_SERVER_URL;
  const token = env.STINT_BASTION_TOKEN;
  if (!serverUrl || !token) {
    process.stderr.write(`stint companion: ${path} must set STINT_SERVER_URL and STINT_BASTION_TOKEN\n`);
    process.exit(2);
  }
  const log = (level: string) => (obj: object, msg?: string) =>
    process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...obj })}\n`);
  const companion = startCompanion({ serverUrl, token, logger: { info: log('info'), warn: log('warn'), error: log('error') } });
  const shutdown = () => void companion.stop().then(() => process.exit(0));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main(process.argv.slice(2));
}
