// Countdown text, the same everywhere (tray title, menu, windows): `42m`, `1h 05m`, `0:59`, `2d 03h`.
// Rounded up, so the display never says 0 while access remains, and reaches `0:00` exactly when it ends.
// Shared by the tray (agent/core models), the CLI and the renderer so every countdown reads the same.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

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

/**
 * The countdown at minute granularity, for text that is redrawn at most once a minute (tray menu, tooltip): the last
 * minute reads `1m` rather than seconds that would go stale between redraws.
 */
export function formatCountdownMinutes(msLeft: number): string {
  return msLeft > 0 && msLeft <= MINUTE ? '1m' : formatCountdown(msLeft);
}

/** How long until formatCountdown(msLeft) shows something else: when to redraw, without polling. */
export function countdownChangesInMs(msLeft: number): number {
  if (!(msLeft > 0)) return Number.POSITIVE_INFINITY;
  const unit = msLeft <= MINUTE ? SECOND : msLeft <= DAY ? MINUTE : HOUR;
  const step = msLeft - (Math.ceil(msLeft / unit) - 1) * unit;
  return Math.max(1, step);
}
