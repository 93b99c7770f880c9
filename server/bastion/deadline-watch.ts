// The companion's own watch of grant deadlines (issue #21), so that a grant server frozen or down across a deadline
// does not leave sessions running. Every few seconds the companion reads the deadline of each grant with sessions on
// its node (GET /v1/bastion/live); a little after a deadline with no end event it asks again, and only when no server
// answers in time are the grant's sessions ended here. A deadline an extension moved is re-read before anything is
// cut, so an extension the watch missed never ends a session early. What was ended alone is kept in a ledger until
// the server's end of the grant comes, to be reported with it.
import type { Clock } from '../../shared/domain/clock';
import type { SessionTraffic } from './session-reports';

/** A far deadline is waited for in steps of at most this (setTimeout's limit is ~24.8 days). */
const MAX_TIMER_MS = 3_600_000;

/** A grant with live sessions on this node, as GET /live lists it. */
interface LiveGrant { grantId: string; endsAt: string; pids: number[]; afterMs?: number }

function isLiveGrant(value: unknown): value is LiveGrant {
  const v = value as LiveGrant;
  return typeof v === 'object' && v !== null && typeof v.grantId === 'string' && !Number.isNaN(Date.parse(v.endsAt))
    && Array.isArray(v.pids) && v.pids.every((p) => Number.isInteger(p) && p > 1)
    && (v.afterMs === undefined || (Number.isInteger(v.afterMs) && v.afterMs >= 0 && v.afterMs <= 60_000));
}

export interface DeadlineWatchOptions {
  fetch: typeof fetch;
  /** The server's GET /v1/bastion/live. */
  url: string;
  headers: Record<string, string>;
  clock: Pick<Clock, 'now'>;
  /** Aborted when the companion stops: no deadline is acted on any more. */
  stopped: AbortSignal;
  /** After a known deadline, how long the server's own end has to arrive before the watch asks. */
  graceMs: number;
  /** How long an answer to that question may take before the sessions end here. */
  confirmTimeoutMs: number;
  /** Work started at a deadline, for the companion's stop to wait on. */
  track: (work: Promise<unknown>) => void;
  /** No server answered at the grant's deadline: end these sessions of it here. */
  onUnanswered: (grantId: string, pids: number[]) => void;
}

export interface DeadlineWatch {
  /**
   * Read the live grants' deadlines (one request at a time, shared by whoever asks meanwhile). The answer is the whole
   * truth for this node: a grant it no longer lists has ended (its end event follows) or has no sessions here.
   * False when no answer came in time: what was known stays.
   */
  refresh(): Promise<boolean>;
  /** The server's end of the grant came: its deadline needs no watching. */
  forget(grantId: string): void;
  /** Disarm every deadline (the companion stops). */
  stop(): void;
}

export function watchDeadlines(options: DeadlineWatchOptions): DeadlineWatch {
  const { clock, stopped, graceMs } = options;
  /**
   * grantId → its deadline and pids as the server last listed them, and the timer that acts at the deadline. `endsAt`
   * is when this node acts: the deadline, or later on a bastion whose target host's companion goes first.
   */
  const deadlines = new Map<string, { endsAt: number; pids: number[]; timer: NodeJS.Timeout }>();

  let refreshing: Promise<boolean> | undefined;
  function refresh(): Promise<boolean> {
    refreshing ??= (async () => {
      try {
        const response = await options.fetch(options.url, { headers: options.headers, signal: AbortSignal.timeout(options.confirmTimeoutMs) });
        if (!response.ok) return false;
        const body = (await response.json()) as { grants?: unknown[] };
        if (stopped.aborted) return false;
        const listed = new Map((body.grants ?? []).filter(isLiveGrant).map((g) => [g.grantId, g] as const));
        for (const grantId of deadlines.keys()) if (!listed.has(grantId)) forget(grantId);
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

  function forget(grantId: string): void {
    clearTimeout(deadlines.get(grantId)?.timer);
    deadlines.delete(grantId);
  }

  function arm(grantId: string, due: number): NodeJS.Timeout {
    const timer = setTimeout(() => options.track(atDeadline(grantId, due)), Math.min(MAX_TIMER_MS, Math.max(0, due - clock.now())));
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
    if (!known || stopped.aborted) return;
    if (clock.now() < due) {
      known.timer = arm(grantId, due);
      return;
    }
    if (await refresh()) {
      const still = deadlines.get(grantId);
      if (still?.endsAt === known.endsAt) still.timer = arm(grantId, clock.now() + graceMs);
      return;
    }
    if (deadlines.get(grantId) !== known) return; // an end event came meanwhile
    forget(grantId);
    options.onUnanswered(grantId, known.pids);
  }

  return {
    refresh,
    forget,
    stop: () => {
      for (const grantId of [...deadlines.keys()]) forget(grantId);
    },
  };
}

/** What the companion ended on its own at a grant's deadline. */
export interface EndedAlone { killed: number[]; closed: number[]; traffic: SessionTraffic[] }

/** Per grant, what was ended alone, until the server's end of the grant comes to be reported with it. */
export class EndedAloneLedger {
  private readonly byGrant = new Map<string, { at: number; done: Promise<EndedAlone> }>();

  /** Add one more cut of the grant's sessions; resolves to all that was ended alone for it so far. */
  add(grantId: string, cut: Promise<EndedAlone>): Promise<EndedAlone> {
    const earlier = this.byGrant.get(grantId)?.done;
    const done = (async (): Promise<EndedAlone> => {
      const mine = await cut;
      const before = await earlier;
      return before ? { killed: [...before.killed, ...mine.killed], closed: [...before.closed, ...mine.closed], traffic: [...before.traffic, ...mine.traffic] } : mine;
    })();
    this.byGrant.set(grantId, { at: Date.now(), done });
    return done;
  }

  /** What was ended alone for the grant, now to be reported; the ledger forgets it. */
  take(grantId: string): Promise<EndedAlone> | undefined {
    const entry = this.byGrant.get(grantId);
    this.byGrant.delete(grantId);
    return entry?.done;
  }

  /** Keep the memory bounded: forget entries older than this (epoch ms) whose end never came. */
  forgetBefore(horizon: number): void {
    for (const [grantId, entry] of this.byGrant) if (entry.at < horizon) this.byGrant.delete(grantId);
  }
}
