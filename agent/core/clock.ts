// Time is an effect: everything in the agent takes a Clock so tests can move the wall clock, stop the monotonic
// clock (suspend) and fire timers late, without monkey-patching globals.
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

/** setTimeout's delay is a signed 32-bit int; longer waits are split (the scheduler re-evaluates on wake-up). */
export const MAX_TIMER_MS = 2_147_483_647;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    return { cancel: () => clearTimeout(handle) };
  },
};
