// Deadline scheduler. A grant's end is an absolute instant decided by the server's clock. This computer's wall
// clock may be wrong or jump, and its monotonic clock stops while the machine sleeps; timers fire late after a
// suspend or a blocked event loop. So each deadline is tracked two ways:
//   - wall:      endsAt − (now() + server clock offset)
//   - monotonic: anchored when the grant arrived (remaining at arrival − monotonic time elapsed since)
// and the effective deadline — kept as a monotonic instant — is ratcheted to the earlier of the two at every
// evaluation. Nothing local can move it later: a clock jump, a late timer, or a suspend can only shorten access.
// Only the server can lengthen it (an extension), and then only by the amount it extended.
//
// One timer per deadline (no polling): it is set for the next warning or the end. Evaluation also happens on
// resume(), clockChanged() and evaluateAll() at start; and whenever any evaluation notices that wall time and
// monotonic time drifted apart (a jump or a suspend), all deadlines are re-evaluated.
import type { Clock, TimerHandle } from '../../shared/domain/clock';

export const DEFAULT_WARNINGS_MS = [5 * 60_000, 60_000];
/** Drift between wall and monotonic time beyond which we assume a clock jump or suspend happened. */
const DRIFT_TOLERANCE_MS = 2_000;

export type DeadlineEvent =
  | { type: 'warning'; id: string; thresholdMs: number; remainingMs: number }
  | {
    type: 'deadline'; id: string; endsAt: number; lateByMs: number;
    /**
     * The wall clock ended it while the time counted here since the grant arrived had not run out: the clock was
     * moved forward (or the machine slept). The server, on its own clock, still has the grant active.
     */
    early: boolean;
  };

export interface TrackOptions {
  /** The server's clock when the grant was received (from the same response), ms. Best anchor available. */
  serverNowMs?: number;
  /** When the grant started (server instant): warnings longer than the grant itself are skipped. */
  startsAtMs?: number;
}

interface Entry {
  id: string;
  endsAt: number;
  monoDeadline: number;
  /** The deadline by time elapsed here alone (monotonic, never ratcheted by the wall clock; moved by extensions). */
  monoAnchor: number;
  warned: Set<number>;
  /** The warnings actually given (`warned` also holds the ones skipped as longer than the grant). */
  given: Set<number>;
  timer?: TimerHandle;
}

export interface DeadlineSchedulerOptions {
  clock: Clock;
  onEvent: (event: DeadlineEvent) => void;
  warningsMs?: number[];
}

export class DeadlineScheduler {
  private readonly clock: Clock;
  private readonly onEvent: (event: DeadlineEvent) => void;
  private readonly warnings: number[];
  private readonly entries = new Map<string, Entry>();
  private offsetMs = 0;
  private lastDrift: number;

  constructor(options: DeadlineSchedulerOptions) {
    this.clock = options.clock;
    this.onEvent = options.onEvent;
    this.warnings = [...(options.warningsMs ?? DEFAULT_WARNINGS_MS)].sort((a, b) => b - a);
    this.lastDrift = this.drift();
  }

  /** Server clock minus local wall clock, ms. */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  /**
   * Learn the server's clock from a response. `uncertaintyMs` is added to the server time so that our estimate of
   * "server now" is never behind (an HTTP Date header is truncated to the second: pass 1000).
   */
  observeServerTime(serverMs: number, receivedAtLocalMs: number = this.clock.now(), uncertaintyMs = 0): void {
    if (!Number.isFinite(serverMs)) return;
    this.offsetMs = serverMs + uncertaintyMs - receivedAtLocalMs;
    this.evaluateAll();
  }

  serverNow(): number {
    return this.clock.now() + this.offsetMs;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /** Track (or update) a deadline. Re-tracking with a later end is a server extension; with an earlier one, a cut. */
  track(id: string, endsAtMs: number, options: TrackOptions = {}): void {
    const monoNow = this.clock.monotonic();
    const existing = this.entries.get(id);
    const fromServer = options.serverNowMs !== undefined ? monoNow + (endsAtMs - options.serverNowMs) : Number.POSITIVE_INFINITY;
    const fromWall = monoNow + (endsAtMs - this.serverNow());
    let monoDeadline: number;
    let monoAnchor: number;
    if (existing) {
      if (existing.endsAt === endsAtMs) return this.evaluate(existing);
      // Move the ratcheted deadline by exactly what the server changed, so earlier local shortening still holds.
      monoDeadline = Math.min(existing.monoDeadline + (endsAtMs - existing.endsAt), fromServer);
      monoAnchor = existing.monoAnchor + (endsAtMs - existing.endsAt);
    } else {
      monoDeadline = monoAnchor = Math.min(fromServer, fromWall);
    }
    const entry: Entry = { id, endsAt: endsAtMs, monoDeadline, monoAnchor, warned: new Set(), given: new Set(), timer: existing?.timer };
    const remaining = monoDeadline - monoNow;
    const total = options.startsAtMs !== undefined ? endsAtMs - options.startsAtMs : Number.POSITIVE_INFINITY;
    for (const threshold of this.warnings) {
      // A 3-minute grant needs no "5 minutes left" warning; after an extension, warnings already given are
      // kept only for thresholds we are still past.
      if (threshold >= total) entry.warned.add(threshold);
      else if (existing?.warned.has(threshold) && remaining <= threshold) {
        entry.warned.add(threshold);
        if (existing.given.has(threshold)) entry.given.add(threshold);
      }
    }
    this.entries.set(id, entry);
    this.evaluate(entry);
  }

  untrack(id: string): void {
    const entry = this.entries.get(id);
    entry?.timer?.cancel();
    this.entries.delete(id);
  }

  /**
   * The most urgent warning given for this deadline that still stands (its threshold, ms): undefined when none was
   * given, or an extension took the end past every one given (they are given again as the new end nears).
   */
  warningGivenMs(id: string): number | undefined {
    const given = this.entries.get(id)?.given;
    return given?.size ? Math.min(...given) : undefined;
  }

  /** Effective time left, ms (≤ 0 means access has ended), or undefined when not tracked. */
  remainingMs(id: string): number | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.ratchet(entry, this.clock.monotonic());
    return entry.monoDeadline - this.clock.monotonic();
  }

  /** When access ends, as an instant on this computer's wall clock (for display: time left = this − now()). */
  localEndsAt(id: string): number | undefined {
    const remaining = this.remainingMs(id);
    return remaining === undefined ? undefined : this.clock.now() + remaining;
  }

  resume(): void {
    this.evaluateAll();
  }

  clockChanged(): void {
    this.evaluateAll();
  }

  evaluateAll(): void {
    this.lastDrift = this.drift();
    for (const entry of [...this.entries.values()]) this.evaluate(entry, false);
  }

  stop(): void {
    for (const entry of this.entries.values()) entry.timer?.cancel();
    this.entries.clear();
  }

  private drift(): number {
    return this.clock.now() - this.clock.monotonic();
  }

  private ratchet(entry: Entry, monoNow: number): void {
    const wallRemaining = entry.endsAt - this.serverNow();
    entry.monoDeadline = Math.min(entry.monoDeadline, monoNow + wallRemaining);
  }

  private evaluate(entry: Entry, checkDrift = true): void {
    if (checkDrift && Math.abs(this.drift() - this.lastDrift) > DRIFT_TOLERANCE_MS) {
      // The wall clock jumped or the machine slept since we last looked: every deadline may be affected.
      this.evaluateAll();
      return;
    }
    if (this.entries.get(entry.id) !== entry) return;
    entry.timer?.cancel();
    entry.timer = undefined;
    const monoNow = this.clock.monotonic();
    this.ratchet(entry, monoNow);
    const remaining = entry.monoDeadline - monoNow;
    if (remaining <= 0) {
      this.entries.delete(entry.id);
      this.onEvent({ type: 'deadline', id: entry.id, endsAt: entry.endsAt, lateByMs: Math.max(0, -remaining), early: entry.monoAnchor - monoNow > DRIFT_TOLERANCE_MS });
      return;
    }
    const crossed = this.warnings.filter((t) => remaining <= t && !entry.warned.has(t));
    if (crossed.length) {
      for (const t of crossed) {
        entry.warned.add(t);
        entry.given.add(t);
      }
      // Only the most urgent one: after a suspend past T-5 and T-1, "1 minute left" is the useful message.
      this.onEvent({ type: 'warning', id: entry.id, thresholdMs: Math.min(...crossed), remainingMs: remaining });
      if (this.entries.get(entry.id) !== entry) return; // the handler may have untracked it
    }
    const next = this.warnings.find((t) => t < remaining && !entry.warned.has(t));
    const delay = next === undefined ? remaining : remaining - next;
    entry.timer = this.clock.setTimer(() => {
      entry.timer = undefined;
      this.evaluate(entry);
    }, delay);
  }
}
