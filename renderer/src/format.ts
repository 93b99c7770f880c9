// Time and duration text for the UI. The countdown reads the same everywhere (tray title, menu, windows):
// `42m`, `1h 05m`, `0:59`, `2d 03h`. Same rules as electron/core/countdown.ts (the tray's copy); both belong in
// shared/domain/countdown.ts, which the renderer should import once it exists (the renderer may not import core).

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Time left, rounded up, so it never reads 0 while access remains and reaches `0:00` exactly when it ends. */
export function formatCountdown(msLeft: number): string {
  if (!(msLeft > 0)) return '0:00';
  const seconds = Math.ceil(msLeft / SECOND);
  if (seconds < 60) return `0:${String(seconds).padStart(2, '0')}`;
  const minutes = Math.ceil(msLeft / MINUTE);
  if (minutes < 60) return `${minutes}m`;
  if (minutes < 24 * 60) return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
  const hours = Math.ceil(msLeft / HOUR);
  return `${Math.floor(hours / 24)}d ${String(hours % 24).padStart(2, '0')}h`;
}

/** How long until formatCountdown shows something else, so a countdown redraws only when its text changes. */
export function countdownChangesInMs(msLeft: number): number {
  if (!(msLeft > 0)) return Number.POSITIVE_INFINITY;
  const unit = msLeft <= MINUTE ? SECOND : msLeft <= DAY ? MINUTE : HOUR;
  const step = msLeft - (Math.ceil(msLeft / unit) - 1) * unit;
  return Math.max(1, step);
}

/** A requested duration in words: `15m`, `1h`, `1h 30m`, `2d`. */
export function formatDuration(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${Math.max(1, minutes)}m`;
  const days = Math.floor(minutes / (24 * 60));
  const hours = Math.floor((minutes % (24 * 60)) / 60);
  const mins = minutes % 60;
  return [days ? `${days}d` : '', hours ? `${hours}h` : '', mins ? `${mins}m` : ''].filter(Boolean).join(' ');
}

/** "14:05" today, "3 Mar 14:05" otherwise — local time, for lists. */
export function formatWhen(instant: string, now: number = Date.now()): string {
  const date = new Date(instant);
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (new Date(now).toDateString() === date.toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}
