// Time is an injected effect: the server's clock decides every deadline, and tests can drive it.
export interface Clock {
  now(): Date;
  /** Run `fn` after `ms` (at most once); returns a cancel function. */
  setTimeout(fn: () => void, ms: number): () => void;
}

// setTimeout takes at most 2^31-1 ms; longer waits re-arm in steps so a far deadline is still exact.
const MAX_TIMEOUT = 2_147_483_647;

export const systemClock: Clock = {
  now: () => new Date(),
  setTimeout(fn, ms) {
    let timer: NodeJS.Timeout;
    let cancelled = false;
    const arm = (remaining: number) => {
      timer = setTimeout(() => {
        if (cancelled) return;
        if (remaining > MAX_TIMEOUT) arm(remaining - MAX_TIMEOUT);
        else fn();
      }, Math.min(Math.max(0, remaining), MAX_TIMEOUT));
      timer.unref?.();
    };
    arm(ms);
    return () => { cancelled = true; clearTimeout(timer); };
  },
};
