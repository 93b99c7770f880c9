// The one system clock (shared/domain/clock.ts) the server and the agent run on: a wait longer than setTimeout's
// 2^31-1 ms fires at its time, not early and not at once; cancel holds between the steps; the server's timers do not
// keep the process alive.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, createSystemClock, systemClock } from '../../shared/domain/clock';

afterEach(() => { vi.useRealTimers(); vi.restoreAllMocks(); });

describe('the system clock', () => {
  it('reads epoch ms and a monotonic time', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
    const m = systemClock.monotonic();
    expect(systemClock.monotonic()).toBeGreaterThanOrEqual(m);
  });

  it('a wait longer than 2^31-1 ms fires exactly at its time', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const wait = 2 * MAX_TIMER_MS + 5_000;
    systemClock.setTimer(fired, wait);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS + 4_999);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('cancel holds before and between the steps of a long wait', () => {
    vi.useFakeTimers();
    const early = vi.fn();
    const between = vi.fn();
    systemClock.setTimer(early, 1_000).cancel();
    const h = systemClock.setTimer(between, MAX_TIMER_MS + 1_000);
    vi.advanceTimersByTime(MAX_TIMER_MS + 10);
    h.cancel();
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(early).not.toHaveBeenCalled();
    expect(between).not.toHaveBeenCalled();
  });

  it('a negative wait fires at once', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    systemClock.setTimer(fired, -5);
    vi.advanceTimersByTime(0);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('unref: the timers of a background clock do not keep the process alive; the default ones do', () => {
    const handles: NodeJS.Timeout[] = [];
    const real = globalThis.setTimeout;
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms: number) => {
      const t = real(fn, ms);
      handles.push(t);
      return t;
    }) as typeof setTimeout);
    createSystemClock({ unref: true }).setTimer(() => undefined, 60_000).cancel();
    systemClock.setTimer(() => undefined, 60_000).cancel();
    expect(handles.map((t) => t.hasRef())).toEqual([false, true]);
  });
});
