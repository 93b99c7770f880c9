// A controllable Clock: wall and monotonic time move independently, and timers fire only when monotonic time
// passes them during advance() — like setTimeout, which is late after a suspend or a blocked event loop.
import type { Clock, TimerHandle } from '../shared/domain/clock';

interface FakeTimer { at: number; seq: number; fn: () => void; cancelled: boolean }

export class FakeClock implements Clock {
  private wall: number;
  private mono = 1_000_000;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(wallStart = Date.parse('2026-03-02T10:00:00Z')) {
    this.wall = wallStart;
  }

  now(): number { return this.wall; }
  monotonic(): number { return this.mono; }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { at: this.mono + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Both clocks advance together, firing each due timer at its own time (in order). */
  advance(ms: number): void {
    const target = this.mono + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      // A late timer (after block()) fires now: time does not run backwards to its due instant.
      this.wall += Math.max(0, due.at - this.mono);
      this.mono = Math.max(this.mono, due.at);
      due.cancelled = true;
      due.fn();
    }
    this.wall += target - this.mono;
    this.mono = target;
    this.timers = this.timers.filter((t) => !t.cancelled);
  }

  /** Both clocks advance but no timer runs (a blocked event loop); the next advance(0) fires them late. */
  block(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }

  /** The machine sleeps: wall time passes, monotonic time and timers do not. */
  suspend(ms: number): void {
    this.wall += ms;
  }

  /** Someone (or NTP) changed the wall clock. */
  jumpWall(ms: number): void {
    this.wall += ms;
  }
}

