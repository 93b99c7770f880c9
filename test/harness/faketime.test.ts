// dev/faketime.ts moves a real Node process's clock from outside. What a user or NTP does to a running program is
// move CLOCK_REALTIME only — CLOCK_MONOTONIC never goes back on a real kernel — so that is the default, and this test
// holds it to it: Date.now() moves by the offset at once, performance.now() and timers go on as before. Faking the
// monotonic clock too (what libfaketime does unless told not to) is no model of a clock change: Node aborts at its
// next timer when it goes back past the process's start.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { fakeTime, type FakeTime } from '../../dev/faketime';
import { recordPid } from '../../dev/run-dir';

/**
 * A Node process that prints its wall and monotonic clocks every 100 ms from a timer, and, through a new timer, for
 * each line it reads (I/O: what wakes an agent whose timers are not due — a server event, a database packet).
 */
function clockPrinter(time: FakeTime) {
  const script = [
    'const print = () => console.log(JSON.stringify({ wall: Date.now(), mono: performance.now() }))',
    'setInterval(print, 100)',
    "process.stdin.on('data', () => setTimeout(print, 0))",
  ].join(';');
  const child = time.watch(spawn(process.execPath, ['-e', script], { env: { ...process.env, ...time.env }, stdio: ['pipe', 'pipe', 'pipe'] }));
  child.stdin.on('error', () => undefined);
  if (child.pid) recordPid(child.pid);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const readings: Array<{ wall: number; mono: number; real: number }> = [];
  createInterface({ input: child.stdout }).on('line', (line) => readings.push({ ...(JSON.parse(line) as { wall: number; mono: number }), real: Date.now() }));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  /** The next reading printed after now. */
  const next = async () => {
    const seen = readings.length;
    await expect.poll(() => readings.length, { timeout: 3_000, interval: 20 }).toBeGreaterThan(seen);
    return readings.at(-1)!;
  };
  return { child, readings, next, exited, stderr: () => stderr };
}

describe('dev/faketime: a real process clock moved from outside', () => {
  it('moves the wall clock only, in both directions; monotonic time and timers are untouched', async () => {
    const time = fakeTime('harness-wall');
    const p = clockPrinter(time);
    try {
      const before = await p.next();
      expect(Math.abs(before.wall - before.real)).toBeLessThan(1_000);

      time.jump(-10 * 60_000);
      const back = await p.next();
      expect(back.wall - back.real).toBeGreaterThan(-10 * 60_000 - 1_000);
      expect(back.wall - back.real).toBeLessThan(-10 * 60_000 + 1_000);
      expect(back.mono).toBeGreaterThan(before.mono); // never back
      // The 100 ms timer goes on at its pace: ten more readings come within a couple of seconds.
      const tenLater = readingsAfter(p.readings, back, 10);
      await expect.poll(tenLater, { timeout: 3_000, interval: 50 }).toBe(true);

      time.jump(+40 * 60_000);
      const forward = await p.next();
      expect(forward.wall - forward.real).toBeGreaterThan(30 * 60_000 - 1_000);
      expect(forward.wall - forward.real).toBeLessThan(30 * 60_000 + 1_000);
      expect(forward.mono - back.mono).toBeLessThan(forward.real - back.real + 500);
      expect(p.child.exitCode).toBeNull();
    } finally {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }, 20_000);

  it('with the monotonic clock faked as well, a backward jump aborts Node (which is why it is not the default)', async () => {
    const time = fakeTime('harness-both', { fakeMonotonic: true });
    const p = clockPrinter(time);
    try {
      await p.next();
      time.jump(-10 * 60_000);
      // Its timers now wait for a monotonic instant 10 minutes away; the first I/O arms a timer, and Node aborts.
      p.child.stdin.write('tick\n');
      const exit = await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('still running'), 5_000))]);
      expect(exit).toEqual({ code: null, signal: 'SIGABRT' });
      expect(p.stderr()).toMatch(/GetNowUint64[\s\S]*Assertion failed: \(now\) >= \(timer_base\(\)\)/);
      // What libfaketime opened for it in /dev/shm went with it (an abort runs no clean-up of its own).
      expect(readdirSync('/dev/shm').filter((f) => f.endsWith(`faketime_shm_${p.child.pid}`) || f.endsWith(`faketime_sem_${p.child.pid}`))).toEqual([]);
    } finally {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }, 20_000);
});

function readingsAfter(readings: Array<{ real: number }>, from: { real: number }, n: number): () => boolean {
  return () => readings.filter((r) => r.real > from.real).length >= n;
}
