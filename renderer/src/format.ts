// Time and duration text for the UI. Countdowns come from shared/domain/countdown.ts, so the tray, the CLI and the
// windows read the same: `42m`, `1h 05m`, `0:59`, `2d 03h`.

export { formatCountdown, countdownChangesInMs } from '../../shared/domain/countdown';
export { formatDuration } from '../../shared/domain/duration';

/** "14:05" today, "3 Mar 14:05" otherwise — local time, for lists. */
export function formatWhen(instant: string, now: number = Date.now()): string {
  const date = new Date(instant);
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (new Date(now).toDateString() === date.toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}
