// Durations as people write them in config ("90s", "15m", "1h", "1h30m", "2d") and back again.
// Pure and dependency-free so the server (config) and the agent (countdowns) read them the same way.

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export type DurationParse = { ok: true; seconds: number } | { ok: false; message: string };

/** Parse "1h", "30m", "1h30m", "45s", "2d" or a bare number of seconds. */
export function parseDuration(text: string | number): DurationParse {
  if (typeof text === 'number') {
    return Number.isInteger(text) && text > 0 ? { ok: true, seconds: text } : { ok: false, message: 'a positive whole number of seconds' };
  }
  const trimmed = text.trim();
  if (/^[0-9]+$/.test(trimmed)) {
    const n = Number(trimmed);
    return n > 0 ? { ok: true, seconds: n } : { ok: false, message: 'a positive duration' };
  }
  const re = /([0-9]+)\s*([smhd])/gy;
  let total = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = re.exec(trimmed)) !== null) {
    total += Number(match[1]) * UNIT_SECONDS[match[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== trimmed.length || consumed === 0) return { ok: false, message: 'a duration like 90s, 15m, 1h, 1h30m or 2d' };
  if (total <= 0) return { ok: false, message: 'a positive duration' };
  return { ok: true, seconds: total };
}

/**
 * A duration in words, for requested durations, notifications and "asked … ago": `15m`, `1h 30m`, `2d 4h`, `59s`.
 * Seconds are shown only under ten minutes, where they still matter; above that the exact minutes are kept, so a
 * request for 1d 0h 30m never reads as "1d".
 */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm']] as const;
  const words = parts.filter(([n]) => n > 0).map(([n, unit]) => `${n}${unit}`);
  if (s < 600 && (s % 60 > 0 || s === 0)) words.push(`${s % 60}s`);
  return words.join(' ');
}
