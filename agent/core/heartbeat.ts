// The agent tells the grant server, every 30 s, which grants it still holds the keys of (POST /v1/grants/heartbeat):
// a policy with `idleEnd` ends a grant whose agent has fallen silent (lid closed for good, laptop lost). Best effort:
// a heartbeat that does not get through is the silence the policy is about.
import type { Clock, TimerHandle } from '../../shared/domain/clock';

/** The server's pace (server/lifecycle/idle.ts HEARTBEAT_EVERY_SECONDS). */
export const HEARTBEAT_EVERY_MS = 30_000;

export interface HeartbeatOptions {
  clock: Clock;
  /** The grants whose keys this process holds now. */
  held: () => string[];
  send: (grantIds: string[]) => Promise<unknown>;
}

export class Heartbeat {
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly options: HeartbeatOptions) {}

  start(): void {
    this.stopped = false;
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimer(() => {
      const ids = this.options.held();
      if (ids.length > 0) void this.options.send(ids).catch(() => undefined);
      this.arm();
    }, HEARTBEAT_EVERY_MS);
  }
}
