// Time is an effect: the server and the agent read the wall clock, the monotonic clock and their timers through one
// Clock, so tests can move the wall clock, stop the monotonic clock (suspend) and fire timers late, without
// monkey-patching globals. Inside a process a time is epoch milliseconds (a number); ISO 8601 is only for the wire
// and for files.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Wall clock, ms since the epoch. May jump in either direction (user, NTP, wrong laptop clock). */
  now(): number;
  /**
   * Monotonic ms from an arbitrary origin. Never goes back, but on Linux/macOS it does not advance while the
   * machine sleeps — which is why deadlines also track the wall clock.
   */
  monotonic(): number;
  /** Run `fn` once after `ms` of monotonic time (like setTimeout, which also pauses during suspend). */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** setTimeout's delay is a signed 32-bit int; a longer wait is re-armed in steps so a far deadline is still exact. */
export const MAX_TIMER_MS = 2_147_483_647;

export interface SystemClockOptions {
  /**
   * Timers do not keep the process alive (Node's `unref()`; ignored where timers have none). The server's deadlines
   * are background work: its listening socket, not a grant that ends next month, decides when it may exit.
   */
  unref?: boolean;
}

/** The real clock: `Date.now()`, `performance.now()` and `setTimeout` — globals in Node and in browsers. */
export function createSystemClock(options: SystemClockOptions = {}): Clock {
  return {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    setTimer(fn, ms) {
      let handle: ReturnType<typeof setTimeout> | undefined;
      let cancelled = false;
      const arm = (remaining: number) => {
        handle = setTimeout(() => {
          if (cancelled) return;
          if (remaining > MAX_TIMER_MS) arm(remaining - MAX_TIMER_MS);
          else fn();
        }, Math.min(Math.max(0, remaining), MAX_TIMER_MS));
        if (options.unref) (handle as unknown as { unref?: () => unknown }).unref?.();
      };
      arm(ms);
      return { cancel: () => { cancelled = true; clearTimeout(handle); } };
    },
  };
}

/** The real clock whose timers keep the process alive (the agent's). */
export const systemClock: Clock = createSystemClock();
