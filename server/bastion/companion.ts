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
// Each of these jobs is a module of its own: end-feed.ts (the SSE feed and its catch-up), processes.ts (which processes
// serve a connection, and ending them), session-reports.ts (the reports and their retries), deadline-watch.ts (the
// deadlines and what was ended alone), traffic.ts (the counters). This one wires them together and is the command.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { systemClock, type Clock } from '../../shared/domain/clock';
import { EndedAloneLedger, watchDeadlines, type EndedAlone } from './deadline-watch';
import { followEnds, type EndedEvent } from './end-feed';
import { procfs, terminator, type ProcessTable } from './processes';
import { reportQueue, type SessionsEndedReport, type SessionTraffic } from './session-reports';
import { ssCounters, TrafficWatch, type SocketCounters } from './traffic';

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

export interface Companion {
  /** Resolves once the first catch-up after connecting has been processed. */
  ready: Promise<void>;
  stop: () => Promise<void>;
}

export function startCompanion(options: CompanionOptions): Companion {
  const doFetch = options.fetch ?? fetch;
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const warn = (obj: object, msg?: string) => logger?.warn(obj, msg);
  const lookbackMs = options.lookbackMs ?? 600_000;
  const base = `${options.serverUrl.replace(/\/$/, '')}/v1/bastion`;
  const headers = { authorization: `Bearer ${options.token}` };
  const stopping = new AbortController();
  /** grantId → pids already handled (a later event for the same grant may carry new pids). */
  const handled = new Map<string, { at: number; pids: Set<number> }>();
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const pending = new Set<Promise<void>>();
  const traffic = new TrafficWatch(options.sockets ?? ssCounters, () => clock.now());
  /** Read the counters; a failure (no `ss`, not root) costs the rows their bytes, never the kill. */
  const sample = () => traffic.sample().catch((error: unknown) => logger?.warn({ err: String(error) }, 'could not read the ssh connections\' byte counters'));
  const sampleEveryMs = options.sampleEveryMs ?? 5_000;
  const sampler = sampleEveryMs > 0 ? setInterval(() => void sample(), sampleEveryMs) : undefined;
  sampler?.unref();
  const terminate = terminator({
    processes: options.processes ?? procfs,
    kill: options.kill ?? ((pid: number, signal: NodeJS.Signals) => process.kill(pid, signal)),
    graceMs: options.killGraceMs ?? 2_000,
    // The counters of the connections about to end, as late as possible: what they carried up to the cut.
    beforeSignal: sample,
  });
  const reports = reportQueue({ fetch: doFetch, url: `${base}/sessions/ended`, headers, stopped: stopping.signal, onReported: options.onReported, warn });
  const deadlines = watchDeadlines({
    fetch: doFetch, url: `${base}/live`, headers, clock, stopped: stopping.signal,
    graceMs: options.deadlineGraceMs ?? 300, confirmTimeoutMs: options.confirmTimeoutMs ?? 500, track, onUnanswered: endAlone,
  });
  const endedAlone = new EndedAloneLedger();

  function handle(event: EndedEvent): void {
    const seen = handled.get(event.grantId) ?? { at: Date.now(), pids: new Set<number>() };
    handled.set(event.grantId, seen);
    const fresh = event.pids.filter((pid) => !seen.pids.has(pid));
    fresh.forEach((pid) => seen.pids.add(pid));
    // What the companion ended alone at the deadline (the server was not answering) is reported with this end.
    const alone = event.cause ? undefined : endedAlone.take(event.grantId);
    if (!event.cause) deadlines.forget(event.grantId);
    const work = (async () => {
      const before = await alone;
      const ended = fresh.length ? await terminate(fresh) : { open: [], gone: [], signalled: [] };
      if (ended.signalled.length) logger?.info({ grantId: event.grantId, pids: ended.signalled }, 'ended grant: closed its ssh connections');
      options.onHandled?.(event, ended.signalled);
      if (fresh.length || before) {
        const counted = [...(before?.traffic ?? []), ...countedFor(fresh)];
        reports.add({
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
    endedAlone.forgetBefore(horizon);
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

  /** End a grant's sessions without the server; the result waits for the grant's end event to be reported. */
  function endAlone(grantId: string, pids: number[]): void {
    const seen = handled.get(grantId) ?? { at: Date.now(), pids: new Set<number>() };
    handled.set(grantId, seen);
    const fresh = pids.filter((pid) => !seen.pids.has(pid));
    if (fresh.length === 0) return;
    fresh.forEach((pid) => seen.pids.add(pid));
    const done = endedAlone.add(grantId, (async (): Promise<EndedAlone> => {
      const ended = await terminate(fresh);
      logger?.warn({ grantId, pids: ended.signalled }, 'no grant server answered at the grant\'s deadline: closed its ssh connections alone');
      options.onEndedAlone?.(grantId, ended.signalled);
      return { killed: ended.open, closed: ended.gone, traffic: countedFor(fresh) };
    })());
    done.catch((error: unknown) => logger?.error({ grantId, err: String(error) }, 'could not end ssh connections'));
    track(done);
  }

  const liveEveryMs = options.liveEveryMs ?? 2_000;
  const poller = liveEveryMs > 0 ? setInterval(() => void deadlines.refresh(), liveEveryMs) : undefined;
  poller?.unref();
  const loop = followEnds({
    fetch: doFetch, base, headers, stopped: stopping.signal, since: clock.now() - lookbackMs,
    idleTimeoutMs: options.idleTimeoutMs ?? 45_000, minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 10_000,
    onEnded: handle,
    onCaughtUp: () => {
      // The deadlines as they are now, extensions made while the stream was down included.
      void deadlines.refresh();
      markReady();
      void reports.send();
    },
    warn,
  });
  return {
    ready,
    stop: async () => {
      stopping.abort();
      clearInterval(sampler);
      clearInterval(poller);
      deadlines.stop();
      await loop;
      await Promise.all([...pending]);
      await reports.settled();
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
