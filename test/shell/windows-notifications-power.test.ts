// Windows (which one a view opens in, what it loads, where the popover goes, Esc), native notifications (with an
// injected Notification constructor) and power/clock events (with the fake clock) — all without Electron.
import { parseDeepLink } from '../../desktop/main/deep-links';
import { describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { FakeClock } from '../../dev/fake-clock';
import type { AgentNotification } from '../../shared/contract/agent';
import { localProblem } from '../../shared/contract/problem';
import {
  WindowManager, isEscape, pageUrl, popoverPosition, windowFor, type UiLocation, type WindowFactory, type WindowKind, type WindowLike,
} from '../../desktop/main/windows';
import { NotificationController, nativeOptions, type NotificationEffect, type NotificationOptionsLike } from '../../desktop/main/notifications';
import { ClockChangeDetector, watchPower } from '../../desktop/main/power';
import { STEP_UP_PARTITION } from '../../desktop/main/stepup-origin';

class FakeWindow implements WindowLike {
  loads: string[] = [];
  shown = 0;
  closed = false;
  position?: { x: number; y: number };
  private closedListeners: Array<() => void> = [];
  private inputListeners: Array<(i: any) => void> = [];
  constructor(readonly contentsId: number, readonly kind: WindowKind, readonly partition: string | undefined) {}
  load(url: string) { this.loads.push(url); }
  show() { this.shown++; }
  close() { if (this.closed) return; this.closed = true; this.closedListeners.forEach((l) => l()); }
  isDestroyed() { return this.closed; }
  setPosition(x: number, y: number) { this.position = { x, y }; }
  send() {}
  onClosed(l: () => void) { this.closedListeners.push(l); }
  onInput(l: (i: any) => void) { this.inputListeners.push(l); }
  key(key: string, extra: Record<string, unknown> = {}) { this.inputListeners.forEach((l) => l({ type: 'keyDown', key, ...extra })); }
}

function windowsSetup(ui: { current: UiLocation }, trayBounds = { x: 1800, y: 0, width: 24, height: 24 }) {
  const made: FakeWindow[] = [];
  let nextId = 1;
  const factory: WindowFactory = {
    create: (kind, partition) => { const w = new FakeWindow(nextId++, kind, partition); made.push(w); return w; },
    trayBounds: () => trayBounds,
    workAreaNear: () => ({ x: 0, y: 25, width: 1920, height: 1055 }),
  };
  return { made, manager: new WindowManager({ factory, ui: () => ui.current }) };
}

describe('windows', () => {
  const file: UiLocation = { kind: 'file', indexFile: '/opt/Stint/dist/renderer/index.html' };
  const server: UiLocation = { kind: 'origin', origin: 'https://stint.example.com' };

  it('one decision goes to the popover, everything else to the main window', () => {
    expect(['request', 'stepup', 'resume', 'approve', 'deny', 'extend'].map((v) => windowFor(v as never))).toEqual(Array(6).fill('popover'));
    expect(windowFor('main')).toBe('main');
    expect(windowFor('settings')).toBe('main');
  });

  it('loads the renderer with the view in the query (file:// or the step-up origin)', () => {
    expect(pageUrl('approve', { requestId: 'r1' }, file)).toBe(`${pathToFileURL('/opt/Stint/dist/renderer/index.html').href}?view=approve&requestId=r1`);
    expect(pageUrl('request', { resourceId: 'prod orders&x' }, server)).toBe('https://stint.example.com/_stint/index.html?view=request&resourceId=prod+orders%26x');
  });

  it('reuses windows, puts step-up-capable windows in the step-up partition, and tracks their ids for IPC', () => {
    const ui: { current: UiLocation } = { current: server };
    const { made, manager } = windowsSetup(ui);
    manager.open('approve', { requestId: 'r1' });
    manager.open('main');
    manager.open('approve', { requestId: 'r2' });
    manager.open('settings');
    expect(made.map((w) => [w.kind, w.partition])).toEqual([['popover', STEP_UP_PARTITION], ['main', STEP_UP_PARTITION]]);
    expect(made[0]!.loads).toEqual([
      'https://stint.example.com/_stint/index.html?view=approve&requestId=r1',
      'https://stint.example.com/_stint/index.html?view=approve&requestId=r2',
    ]);
    expect(made[1]!.loads).toEqual(['https://stint.example.com/_stint/index.html?view=main', 'https://stint.example.com/_stint/index.html?view=settings']);
    expect(manager.ids()).toEqual(new Set([1, 2]));
    made[0]!.close();
    expect(manager.ids()).toEqual(new Set([2]));
    expect(manager.all()).toEqual([made[1]]);
  });

  it('without a usable server origin, windows load the bundled files in the default session', () => {
    const { made, manager } = windowsSetup({ current: file });
    manager.open('main');
    expect(made[0]!.partition).toBeUndefined();
    expect(made[0]!.loads[0]).toMatch(/^file:\/\/.*index\.html\?view=main$/);
  });

  it('reopens a window when the server origin changed (a window cannot change session)', () => {
    const ui: { current: UiLocation } = { current: file };
    const { made, manager } = windowsSetup(ui);
    manager.open('main');
    ui.current = server;
    manager.open('main');
    expect(made).toHaveLength(2);
    expect(made[0]!.closed).toBe(true);
    expect(made[1]!.partition).toBe(STEP_UP_PARTITION);
  });

  it('Esc closes the popover (only a plain Esc), not the main window', () => {
    const { made, manager } = windowsSetup({ current: file });
    manager.open('request', { resourceId: 'prod-orders' });
    manager.open('main');
    made[0]!.key('Escape', { shift: true });
    made[0]!.key('a');
    expect(made[0]!.closed).toBe(false);
    made[0]!.key('Escape');
    expect(made[0]!.closed).toBe(true);
    expect(made[1]!.closed).toBe(false);
    expect(isEscape({ type: 'keyUp', key: 'Escape' })).toBe(false);
  });

  it('places the popover by the tray: below a top tray, above a bottom one, on screen', () => {
    const work = { x: 0, y: 25, width: 1920, height: 1055 };
    const size = { width: 380, height: 520 };
    // macOS: the icon sits in the menu bar above the work area; the popover hangs just below it.
    expect(popoverPosition({ x: 1800, y: 0, width: 24, height: 24 }, size, work)).toEqual({ x: 1534, y: 31 });
    expect(popoverPosition({ x: 1000, y: 1050, width: 24, height: 30 }, size, { x: 0, y: 0, width: 1920, height: 1040 })).toEqual({ x: 822, y: 514 });
    expect(popoverPosition({ x: 2, y: 0, width: 24, height: 24 }, size, work)).toEqual({ x: 6, y: 31 });
    // Linux without tray bounds: the top-right corner.
    expect(popoverPosition({ x: 0, y: 0, width: 0, height: 0 }, size, work)).toEqual({ x: 1534, y: 31 });
    const { made, manager } = windowsSetup({ current: file });
    manager.open('stepup', { requestId: 'r1' });
    expect(made[0]!.position).toEqual({ x: 1534, y: 31 });
  });
});

describe('notifications', () => {
  const asked: AgentNotification = { id: 'approval_asked:r1', kind: 'approval_asked', title: 'Approval asked', body: 'bob wants write on prod-orders for 1h — INC-4512', actions: ['approve', 'deny'], requestId: 'r1' };
  const approved: AgentNotification = { id: 'approved:r2', kind: 'approved', title: 'Access approved', body: 'prod-orders is ready', actions: ['open_psql', 'copy_uri'], requestId: 'r2', grantId: 'g2' };
  const expiring: AgentNotification = { id: 'expiring:g2', kind: 'expiring', title: 'Access ending soon', body: 'prod-orders ends in 5 minutes', actions: ['extend'], grantId: 'g2' };

  function setup(platform: NodeJS.Platform, supported = true) {
    const created: FakeNotification[] = [];
    const effects: NotificationEffect[] = [];
    class FakeNotification {
      listeners = new Map<string, Array<(...args: any[]) => void>>();
      shown = false;
      closed = false;
      constructor(readonly options: NotificationOptionsLike) { created.push(this); }
      show() { this.shown = true; }
      close() { this.closed = true; this.emit('close'); }
      on(event: string, l: (...args: any[]) => void) { this.listeners.set(event, [...(this.listeners.get(event) ?? []), l]); return this; }
      emit(event: string, ...args: unknown[]) { (this.listeners.get(event) ?? []).forEach((l) => l(...args)); }
    }
    const controller = new NotificationController({ Notification: FakeNotification, isSupported: () => supported, platform, act: (e) => void effects.push(e) });
    return { created, effects, controller };
  }

  it('macOS: buttons; Approve/Deny open the approval view, never approve', () => {
    const { created, effects, controller } = setup('darwin');
    controller.handle({ type: 'notification', notification: asked });
    expect(created[0]!.options).toMatchObject({ title: 'Approval asked', body: asked.body, actions: [{ type: 'button', text: 'Approve…' }, { type: 'button', text: 'Deny…' }] });
    expect(created[0]!.shown).toBe(true);
    created[0]!.emit('action', { actionIndex: 0 }, 0);
    created[0]!.emit('action', { actionIndex: 1 }, 1);
    created[0]!.emit('click');
    expect(effects).toEqual([
      { type: 'open', view: 'approve', params: { requestId: 'r1' } },
      { type: 'open', view: 'deny', params: { requestId: 'r1' } },
      { type: 'open', view: 'approve', params: { requestId: 'r1' } },
    ]);
  });

  it('macOS: psql and copy act directly (no decision involved), extend opens its view', () => {
    const { created, effects, controller } = setup('darwin');
    controller.show(approved);
    controller.show(expiring);
    created[0]!.emit('action', { actionIndex: 0 });
    created[0]!.emit('action', { actionIndex: 1 });
    created[1]!.emit('action', { actionIndex: 0 });
    created[1]!.emit('action', { actionIndex: 7 });
    expect(effects).toEqual([
      { type: 'call', method: 'openPsql', input: { grantId: 'g2' } },
      { type: 'call', method: 'copyConnectionUri', input: { grantId: 'g2' } },
      { type: 'open', view: 'extend', params: { grantId: 'g2' } },
    ]);
  });

  it.each(['linux', 'win32'] as const)('%s: no buttons, a click opens where the user can act', (platform) => {
    const { created, effects, controller } = setup(platform);
    controller.show(asked);
    controller.show(approved);
    expect(created.map((n) => n.options.actions)).toEqual([undefined, undefined]);
    created[0]!.emit('click');
    created[1]!.emit('click');
    expect(effects).toEqual([{ type: 'open', view: 'approve', params: { requestId: 'r1' } }, { type: 'open', view: 'main', params: {} }]);
  });

  it('win32: an approval asked is toast XML whose button and body open the approval by deep link, escaped', () => {
    const { created, controller } = setup('win32');
    controller.show({ ...asked, body: 'bob <b>wants</b> "write" & more' });
    controller.show(approved);
    const toast = created[0]!.options.toastXml!;
    expect(toast).toContain('launch="stint://approve/r1"');
    expect(toast).toContain('<action content="Approve…" activationType="protocol" arguments="stint://approve/r1"/>');
    expect(toast).toContain('<text>bob &#60;b&#62;wants&#60;/b&#62; &#34;write&#34; &#38; more</text>');
    expect(parseDeepLink(/arguments="([^"]+)"/.exec(toast)![1]!)).toEqual({ ok: true, link: { view: 'approve', params: { requestId: 'r1' } } });
    expect(created[1]!.options.toastXml).toBeUndefined();
  });

  it('a notification with the same id replaces the earlier one; closed ones are released', () => {
    const { created, controller } = setup('linux');
    controller.show(expiring);
    controller.show({ ...expiring, body: 'prod-orders ends in 1 minute' });
    expect(created[0]!.closed).toBe(true);
    expect(controller.count).toBe(1);
    created[1]!.close();
    expect(controller.count).toBe(0);
  });

  it('shows nothing where notifications are unsupported, and ignores other events', () => {
    const { created, controller } = setup('linux', false);
    controller.show(asked);
    controller.handle({ type: 'problem', problem: localProblem('server_unreachable', 'y') });
    expect(created).toEqual([]);
    expect(nativeOptions(asked, 'darwin').urgency).toBe('critical');
  });

  it('names the client of the resource\'s kind on the open button', () => {
    const ready = { id: 'approved:r1', kind: 'approved' as const, title: 'Access approved', body: 'Shop is ready', actions: ['open_psql' as const, 'copy_uri' as const], requestId: 'r1', grantId: 'g1' };
    expect(nativeOptions({ ...ready, resourceKind: 'mariadb' }, 'darwin').actions?.map((a) => a.text)).toEqual(['Open in mariadb', 'Copy URI']);
    expect(nativeOptions(ready, 'darwin').actions?.map((a) => a.text)).toEqual(['Open in psql', 'Copy URI']);
  });
});

describe('power and clock', () => {
  it('resume reaches the agent; sleep and lock close the popover; stop removes the listeners', () => {
    const listeners = new Map<string, () => void>();
    const power = { on: (e: string, l: () => void) => listeners.set(e, l), removeListener: (e: string) => listeners.delete(e) };
    const seen: string[] = [];
    const stop = watchPower(power, { resume: () => seen.push('resume'), clockChanged: () => seen.push('clock') }, { onSleepOrLock: () => seen.push('close popover') });
    listeners.get('suspend')!();
    listeners.get('resume')!();
    listeners.get('lock-screen')!();
    expect(seen).toEqual(['close popover', 'resume', 'close popover']);
    stop();
    expect(listeners.size).toBe(0);
  });

  it('detects a wall-clock jump on one timer, and not ordinary time or a busy event loop', () => {
    const clock = new FakeClock();
    const drifts: number[] = [];
    const detector = new ClockChangeDetector({ clock, onChange: (d) => drifts.push(d), intervalMs: 30_000, toleranceMs: 2_000 });
    detector.start();
    clock.advance(5 * 60_000);
    expect(drifts).toEqual([]);
    expect(clock.pendingTimers()).toBe(1);
    clock.jumpWall(-3_600_000);
    clock.advance(30_000);
    expect(drifts).toEqual([-3_600_000]);
    clock.jumpWall(1_500);
    clock.advance(30_000);
    expect(drifts).toHaveLength(1);
    // Asleep for an hour: wall time moved, monotonic did not; checked at once on resume.
    clock.suspend(3_600_000);
    detector.check();
    expect(drifts).toEqual([-3_600_000, 3_600_000]); // the small NTP-like step was absorbed at its own check
    expect(clock.pendingTimers()).toBe(1);
    detector.stop();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('a timer that fires late (busy event loop) is not a clock change', () => {
    let wall = 1_000_000;
    let mono = 5_000;
    let pending: (() => void) | undefined;
    const clock = { now: () => wall, monotonic: () => mono, setTimer: (fn: () => void) => { pending = fn; return { cancel: () => { pending = undefined; } }; } };
    const drifts: number[] = [];
    new ClockChangeDetector({ clock, onChange: (d) => drifts.push(d), intervalMs: 30_000 }).start();
    wall += 120_000;
    mono += 120_000;
    pending!();
    expect(drifts).toEqual([]);
    wall += 30_000 + 10_000;
    mono += 30_000;
    pending!();
    expect(drifts).toEqual([10_000]);
  });
});
