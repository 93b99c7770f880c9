import { describe, expect, it } from 'vitest';
import { countdownChangesInMs, formatCountdown, formatDuration } from './format';

describe('formatCountdown', () => {
  it('reads like the tray: 42m, 1h 05m, 0:59', () => {
    expect(formatCountdown(42 * 60_000)).toBe('42m');
    expect(formatCountdown(65 * 60_000)).toBe('1h 05m');
    expect(formatCountdown(59_000)).toBe('0:59');
    expect(formatCountdown(27 * 3600_000)).toBe('1d 03h');
  });

  it('rounds up, so it never shows zero while access remains', () => {
    expect(formatCountdown(41 * 60_000 + 1)).toBe('42m');
    expect(formatCountdown(60_000)).toBe('1m');
    expect(formatCountdown(59_001)).toBe('1m');
    expect(formatCountdown(1)).toBe('0:01');
    expect(formatCountdown(0)).toBe('0:00');
    expect(formatCountdown(-5_000)).toBe('0:00');
    expect(formatCountdown(Number.NaN)).toBe('0:00');
  });

  it('says when the text next changes', () => {
    expect(countdownChangesInMs(42 * 60_000)).toBe(60_000);
    expect(countdownChangesInMs(42 * 60_000 - 10_000)).toBe(50_000);
    expect(countdownChangesInMs(30_500)).toBe(500);
    expect(formatCountdown(30_500 - countdownChangesInMs(30_500))).toBe('0:30');
    expect(countdownChangesInMs(0)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('formatDuration', () => {
  it('writes requested durations compactly', () => {
    expect(formatDuration(15 * 60)).toBe('15m');
    expect(formatDuration(3600)).toBe('1h');
    expect(formatDuration(5400)).toBe('1h 30m');
    expect(formatDuration(2 * 86400)).toBe('2d');
  });
});
