import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { DeadlineScheduler, type DeadlineEvent } from '../../agent/core/deadlines';
import { FakeClock } from '../../dev/fake-clock';

const MIN = 60_000;

function setup(wallOffsetFromServerMs = 0) {
  const clock = new FakeClock();
  const events: Array<DeadlineEvent & { atMono: number }> = [];
  const mono0 = clock.monotonic();
  const scheduler = new DeadlineScheduler({ clock, onEvent: (e) => events.push({ ...e, atMono: clock.monotonic() - mono0 }) });
  // The server's clock: this computer's wall clock is `wallOffsetFromServerMs` behind it.
  const serverNow = () => clock.now() + wallOffsetFromServerMs;
  const ended = () => events.filter((e) => e.type === 'deadline');
  const warnings = () => events.filter((e) => e.type === 'warning').map((e) => (e.type === 'warning' ? e.thresholdMs : 0));
  return { clock, scheduler, events, serverNow, ended, warnings };
}

describe('deadline scheduler', () => {
  it('warns at T-5 and T-1 minutes and ends exactly at the server deadline, with one timer per deadline', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(5 * MIN - 1);
    expect(warnings()).toEqual([]);
    clock.advance(1);
    expect(warnings()).toEqual([5 * MIN]);
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(4 * MIN);
    expect(warnings()).toEqual([5 * MIN, MIN]);
    clock.advance(MIN - 1);
    expect(ended()).toHaveLength(0);
    expect(scheduler.remainingMs('g1')).toBe(1);
    clock.advance(1);
    expect(ended()).toEqual([expect.objectContaining({ id: 'g1', lateByMs: 0, atMono: 10 * MIN, early: false })]);
    expect(scheduler.has('g1')).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('corrects a wrong laptop clock with the server time, so access still lasts what the server granted', () => {
    // This laptop is 10 minutes behind the server.
    const { clock, scheduler, serverNow, ended } = setup(10 * MIN);
    scheduler.observeServerTime(serverNow());
    scheduler.track('g1', serverNow() + 30 * MIN);
    expect(scheduler.localEndsAt('g1')).toBe(clock.now() + 30 * MIN);
    clock.advance(30 * MIN - 1);
    expect(ended()).toHaveLength(0);
    clock.advance(1);
    expect(ended()).toHaveLength(1);
  });

  it('a wall clock moved forward ends access early, and moving it back again does not give the time back', () => {
    const { clock, scheduler, serverNow, ended } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.advance(MIN);
    clock.jumpWall(3 * MIN);
    scheduler.clockChanged();
    expect(scheduler.remainingMs('g1')).toBe(6 * MIN);
    clock.jumpWall(-3 * MIN);
    scheduler.clockChanged();
    expect(scheduler.remainingMs('g1')).toBe(6 * MIN);
    clock.advance(6 * MIN);
    // Ended 3 minutes before the server's deadline: early, so the agent tells the server (local-access.ts).
    expect(ended()).toEqual([expect.objectContaining({ atMono: 7 * MIN, early: true })]);
  });

  it('a wall clock jump far past the deadline ends access at once on clockChanged()', () => {
    const { clock, scheduler, serverNow, ended } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.jumpWall(2 * 3600_000);
    scheduler.clockChanged();
    expect(ended()).toHaveLength(1);
  });

  it('a wall clock moved back cannot extend access: the monotonic anchor still ends it on time', () => {
    const { clock, scheduler, serverNow, ended } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.advance(2 * MIN);
    clock.jumpWall(-60 * MIN);
    scheduler.clockChanged();
    expect(scheduler.remainingMs('g1')).toBe(8 * MIN);
    clock.advance(8 * MIN);
    expect(ended()).toEqual([expect.objectContaining({ atMono: 10 * MIN })]);
  });

  it('notices a wall clock jump by itself at the next timer, even if nobody calls clockChanged()', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    scheduler.track('g1', serverNow() + 60 * MIN, { serverNowMs: serverNow() });
    scheduler.track('g2', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.jumpWall(40 * MIN);
    // g2's first timer (meant for its T-5 warning) fires at 5 min; by the wall clock g2 is long over, and the
    // drift it notices re-evaluates g1 too.
    clock.advance(5 * MIN);
    expect(ended()).toEqual([expect.objectContaining({ id: 'g2', atMono: 5 * MIN })]);
    expect(warnings()).toEqual([]);
    expect(scheduler.remainingMs('g1')).toBe(15 * MIN);
    clock.advance(15 * MIN);
    expect(ended().map((e) => e.id)).toEqual(['g2', 'g1']);
  });

  it('monotonic clock stopped during suspend: resume past the deadline ends access at once, no stale warnings', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.advance(2 * MIN);
    clock.suspend(45 * MIN);
    scheduler.resume();
    expect(ended()).toEqual([expect.objectContaining({ id: 'g1', lateByMs: 37 * MIN })]);
    expect(warnings()).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('resume before the deadline shortens what is left by the time asleep and gives the most urgent warning only', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.suspend(9 * MIN + 30_000);
    scheduler.resume();
    expect(warnings()).toEqual([MIN]);
    expect(scheduler.remainingMs('g1')).toBe(30_000);
    clock.advance(30_000);
    expect(ended()).toHaveLength(1);
  });

  it('a late timer (blocked event loop) fires the deadline once, reporting how late, and skips the warnings', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    clock.block(12 * MIN);
    clock.advance(0);
    expect(ended()).toEqual([expect.objectContaining({ lateByMs: 2 * MIN })]);
    expect(warnings()).toEqual([]);
  });

  it('a server extension moves the end by exactly the extension, keeps earlier local shortening, and re-arms warnings', () => {
    const { clock, scheduler, serverNow, ended, warnings } = setup();
    const endsAt = serverNow() + 10 * MIN;
    scheduler.track('g1', endsAt, { serverNowMs: serverNow() });
    clock.jumpWall(MIN); // local clock jumped ahead: access is 1 minute shorter from now on
    scheduler.clockChanged();
    clock.advance(5 * MIN);
    expect(warnings()).toEqual([5 * MIN]);
    scheduler.track('g1', endsAt + 10 * MIN);
    expect(scheduler.remainingMs('g1')).toBe(14 * MIN);
    clock.advance(9 * MIN);
    expect(warnings()).toEqual([5 * MIN, 5 * MIN]);
    clock.advance(5 * MIN);
    expect(ended()).toEqual([expect.objectContaining({ atMono: 19 * MIN })]);
  });

  it('a grant shorter than a warning threshold gets no warning for it', () => {
    const { clock, scheduler, serverNow, warnings } = setup();
    scheduler.track('g1', serverNow() + 3 * MIN, { serverNowMs: serverNow(), startsAtMs: serverNow() });
    expect(scheduler.warningGivenMs('g1')).toBeUndefined(); // skipped, not given
    clock.advance(3 * MIN);
    expect(warnings()).toEqual([MIN]);
  });

  it('says which warning given still stands: none once an extension takes the end past it, the earlier one when it is still past', () => {
    const { clock, scheduler, serverNow } = setup();
    const endsAt = serverNow() + 10 * MIN;
    scheduler.track('g1', endsAt, { serverNowMs: serverNow() });
    expect(scheduler.warningGivenMs('g1')).toBeUndefined();
    clock.advance(5 * MIN);
    expect(scheduler.warningGivenMs('g1')).toBe(5 * MIN);
    clock.advance(4 * MIN);
    expect(scheduler.warningGivenMs('g1')).toBe(MIN);
    // 1 minute left, extended by 3: the 1-minute warning no longer holds, the 5-minute one still does.
    scheduler.track('g1', endsAt + 3 * MIN);
    expect(scheduler.warningGivenMs('g1')).toBe(5 * MIN);
    // Extended by an hour more: no warning stands until the new end nears.
    scheduler.track('g1', endsAt + 63 * MIN);
    expect(scheduler.warningGivenMs('g1')).toBeUndefined();
    clock.advance(59 * MIN);
    expect(scheduler.warningGivenMs('g1')).toBe(5 * MIN);
    scheduler.untrack('g1');
    expect(scheduler.warningGivenMs('g1')).toBeUndefined();
  });

  it('an HTTP Date header (1 s resolution) can only make access end earlier, never later', () => {
    const { clock, scheduler, ended } = setup();
    const serverMs = clock.now() + 400; // server is 400 ms ahead; the header says the truncated second
    scheduler.observeServerTime(Math.floor(serverMs / 1000) * 1000, clock.now(), 1000);
    scheduler.track('g1', serverMs + 10 * MIN);
    const left = scheduler.remainingMs('g1')!;
    expect(left).toBeLessThanOrEqual(10 * MIN);
    expect(left).toBeGreaterThan(10 * MIN - 1000);
    clock.advance(left);
    expect(ended()).toHaveLength(1);
  });

  it('untrack cancels the timer', () => {
    const { clock, scheduler, serverNow, events } = setup();
    scheduler.track('g1', serverNow() + 10 * MIN, { serverNowMs: serverNow() });
    scheduler.untrack('g1');
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(20 * MIN);
    expect(events).toEqual([]);
  });

  it('property: whatever the clocks do, access never outlasts the real time granted (while one clock is right)', () => {
    // Only the impossible case is excluded: a wall clock set back AND a suspend in the same run leave neither clock
    // measuring real time. Each run picks which of the two it allows.
    const op = (mode: 'no-suspend' | 'no-backward-jump') => fc.oneof(
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4 * MIN }) }),
      fc.record({ kind: fc.constant('jump' as const), ms: fc.integer({ min: mode === 'no-backward-jump' ? 0 : -60 * MIN, max: 60 * MIN }) }),
      fc.record({ kind: fc.constant(mode === 'no-suspend' ? 'advance' as const : 'suspend' as const), ms: fc.integer({ min: 0, max: 20 * MIN }) }),
      fc.record({ kind: fc.constant('block' as const), ms: fc.integer({ min: 0, max: 3 * MIN }) }),
    );
    const run = fc.constantFrom('no-suspend' as const, 'no-backward-jump' as const)
      .chain((mode) => fc.tuple(fc.integer({ min: MIN, max: 30 * MIN }), fc.array(op(mode), { maxLength: 25 }), fc.boolean()));
    fc.assert(fc.property(run, ([duration, ops, notify]) => {
      const clock = new FakeClock();
      let real = 0;
      let monoAtOp = clock.monotonic();
      let firedAtReal: number | undefined;
      const s = new DeadlineScheduler({ clock, onEvent: (e) => { if (e.type === 'deadline') firedAtReal ??= real + (clock.monotonic() - monoAtOp); } });
      s.track('g', clock.now() + duration, { serverNowMs: clock.now() });
      for (const o of ops) {
        monoAtOp = clock.monotonic();
        if (o.kind === 'advance') { clock.advance(o.ms); real += o.ms; }
        if (o.kind === 'jump') { clock.jumpWall(o.ms); if (notify) s.clockChanged(); }
        if (o.kind === 'suspend') { clock.suspend(o.ms); real += o.ms; monoAtOp = clock.monotonic(); s.resume(); }
        if (o.kind === 'block') { clock.block(o.ms); real += o.ms; monoAtOp = clock.monotonic(); clock.advance(0); }
        // By the time real time has reached the deadline, access has ended…
        if (real >= duration) expect(firedAtReal).toBeDefined();
        // …and when it ends while time flows normally, it ends no later than the deadline.
        if (o.kind === 'advance' && firedAtReal !== undefined && firedAtReal > real - o.ms) expect(firedAtReal).toBeLessThanOrEqual(duration);
      }
    }), { numRuns: 500 });
  });
});
