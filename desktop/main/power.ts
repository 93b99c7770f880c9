// Sleep, wake, lock and wall-clock changes → the agent. Deadlines are kept on both clocks (agent/core/deadlines):
// after a wake-up or a wall-clock jump the scheduler must look again at once, since timers were paused or the
// instant they aimed for moved. Electron's powerMonitor and the clock are injected.
import type { Clock, TimerHandle } from '../../shared/domain/clock';

export interface PowerMonitorLike {
  on(event: 'suspend' | 'resume' | 'lock-screen' | 'unlock-screen', listener: () => void): unknown;
  removeListener(event: 'suspend' | 'resume' | 'lock-screen' | 'unlock-screen', listener: () => void): unknown;
}

export interface PowerTarget {
  /** The machine woke up: deadlines first, then catch up with the server. */
  resume(): void;
  clockChanged(): void;
}

/**
 * resume → agent.resume(); suspend and lock close the popover (a half-made decision should not wait on a locked
 * screen, and a step-up challenge would expire anyway).
 */
export function watchPower(power: PowerMonitorLike, agent: PowerTarget, hooks: { onSleepOrLock?: () => void } = {}): () => void {
  const resume = () => agent.resume();
  const away = () => hooks.onSleepOrLock?.();
  power.on('resume', resume);
  power.on('suspend', away);
  power.on('lock-screen', away);
  return () => {
    power.removeListener('resume', resume);
    power.removeListener('suspend', away);
    power.removeListener('lock-screen', away);
  };
}

/**
 * Notices the wall clock being changed (by the user, NTP, a VM restore): on one timer, compares how far the wall
 * clock moved with how far the monotonic clock moved. A difference beyond `toleranceMs` is a jump (or a sleep, which
 * the 'resume' event also reports; telling the agent twice is harmless).
 */
export class ClockChangeDetector {
  private timer?: TimerHandle;
  private lastWall = 0;
  private lastMono = 0;

  constructor(private readonly options: { clock: Clock; onChange: (driftMs: number) => void; intervalMs?: number; toleranceMs?: number }) {}

  start(): void {
    this.stop();
    this.mark();
    this.arm();
  }

  private mark(): void {
    this.lastWall = this.options.clock.now();
    this.lastMono = this.options.clock.monotonic();
  }

  private arm(): void {
    this.timer = this.options.clock.setTimer(() => this.check(), this.options.intervalMs ?? 30_000);
  }

  /** Compare now (also called on demand, e.g. from the 'resume' event). */
  check(): void {
    const { clock } = this.options;
    const drift = clock.now() - this.lastWall - (clock.monotonic() - this.lastMono);
    this.mark();
    if (this.timer) {
      this.timer.cancel();
      this.arm();
    }
    if (Math.abs(drift) > (this.options.toleranceMs ?? 2_000)) this.options.onChange(drift);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
