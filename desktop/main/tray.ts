// The tray: applies `trayModel` (agent/core/models.ts) to an Electron Tray. Everything Electron is injected (a
// Tray-like object, a Menu builder, the clock), so the refresh cadence is unit-tested under Node.
//
// Idle CPU matters for an app that lives in the tray all day, so the controller:
// - sets the image, title and tooltip only when they change, and rebuilds the native menu only when its template
//   changed (deep compare) — rebuilding a menu is the expensive call, and on Linux it flickers an open menu;
// - keeps the menu and tooltip at minute granularity (seconds appear only in the macOS title, in the last minute);
// - re-renders at the moment the visible text next changes, with one timer (no polling loop).
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { MenuItemConstructorOptions } from 'electron';
import type { AgentState } from '../../shared/contract/agent';
import type { Clock, TimerHandle } from '../../shared/domain/clock';
import { countdownChangesInMs } from '../../shared/domain/countdown';
import { activeGrants, trayModel, type TrayAction, type TrayIcon, type TrayMenuItem } from '../../agent/core/models';
import { isAgentError } from '../../agent/core/errors';

export interface TrayLike {
  setImage(image: string): void;
  setTitle(title: string): void;
  setToolTip(toolTip: string): void;
  setContextMenu(menu: never): void;
}

export interface MenuBuilder<M = unknown> {
  buildFromTemplate(template: MenuItemConstructorOptions[]): M;
}

/** A shell-level checkbox appended to the menu (not part of the agent's state), e.g. "Launch at login". */
export interface ShellToggle {
  label: string;
  checked(): boolean;
  set(checked: boolean): void;
}

export interface TrayControllerOptions {
  tray: TrayLike;
  menu: MenuBuilder;
  platform: NodeJS.Platform;
  /** build/resources/tray inside the app. */
  iconDir: string;
  clock: Pick<Clock, 'now' | 'setTimer'>;
  dispatch: (action: TrayAction) => void;
  toggles?: ShellToggle[];
}

/** The icon files for each state (build/resources/tray); template images on macOS so they follow the menu bar. */
const ICON_FILES: Record<TrayIcon, string> = {
  idle: 'idle',
  active: 'active',
  waiting: 'pending',
  needs_you: 'attention',
  offline: 'offline',
};

export function trayIconPath(icon: TrayIcon, platform: NodeJS.Platform, iconDir: string): string {
  return join(iconDir, `${ICON_FILES[icon]}${platform === 'darwin' ? 'Template' : ''}.png`);
}

/**
 * When the minute-granularity text (menu, tooltip) next changes: the next minute boundary of any grant. A grant at
 * 0:00 changes only when the agent publishes that it ended, which re-renders anyway.
 */
export function minuteRefreshMs(state: AgentState, now: number): number | undefined {
  const waits = activeGrants(state, now).filter((g) => g.msLeft > 0).map((g) => (g.msLeft > 60_000 ? countdownChangesInMs(g.msLeft) : g.msLeft));
  return waits.length ? Math.max(1, Math.min(...waits)) : undefined;
}

export interface RenderedTray {
  image: string;
  title?: string;
  tooltip: string;
  menu: TrayMenuItem[];
  refreshAfterMs?: number;
}

/** What the tray shows for a state at a time, per platform: the pure half of the controller. */
export function renderTray(state: AgentState, now: number, platform: NodeJS.Platform, iconDir: string): RenderedTray {
  const model = trayModel(state, now);
  const mac = platform === 'darwin';
  const refreshAfterMs = mac ? model.refreshAfterMs : minuteRefreshMs(state, now);
  return {
    image: trayIconPath(model.icon, platform, iconDir),
    ...(mac ? { title: model.title } : {}),
    tooltip: model.tooltip,
    menu: model.menu,
    ...(refreshAfterMs !== undefined ? { refreshAfterMs } : {}),
  };
}

export function menuTemplate(items: TrayMenuItem[], dispatch: (action: TrayAction) => void): MenuItemConstructorOptions[] {
  return items.map((item): MenuItemConstructorOptions => {
    if (item.kind === 'separator') return { type: 'separator' };
    if (item.kind === 'label') return { label: item.label, enabled: false };
    const action = item.action;
    return {
      label: item.label,
      enabled: item.enabled ?? true,
      ...(item.submenu ? { submenu: menuTemplate(item.submenu, dispatch) } : {}),
      ...(action ? { click: () => dispatch(action) } : {}),
    };
  });
}

export class TrayController {
  private state?: AgentState;
  private shown: Partial<RenderedTray> & { toggles?: boolean[] } = {};
  private timer?: TimerHandle;
  private disposed = false;

  constructor(private readonly options: TrayControllerOptions) {}

  /** A new agent state: render now. */
  update(state: AgentState): void {
    this.state = state;
    this.render();
  }

  /** Re-render from the last state (a timer, a shell toggle changed). */
  render(): void {
    if (this.disposed || !this.state) return;
    const { tray, platform, iconDir, clock } = this.options;
    const next = renderTray(this.state, clock.now(), platform, iconDir);
    if (next.image !== this.shown.image) tray.setImage(next.image);
    if (next.title !== undefined && next.title !== this.shown.title) tray.setTitle(next.title);
    if (next.tooltip !== this.shown.tooltip) tray.setToolTip(next.tooltip);
    const toggles = (this.options.toggles ?? []).map((t) => t.checked());
    if (!isDeepStrictEqual(next.menu, this.shown.menu) || !isDeepStrictEqual(toggles, this.shown.toggles)) {
      tray.setContextMenu(this.options.menu.buildFromTemplate(this.template(next.menu)) as never);
    }
    this.shown = { ...next, toggles };
    this.schedule(next.refreshAfterMs);
  }

  private template(items: TrayMenuItem[]): MenuItemConstructorOptions[] {
    const template = menuTemplate(items, this.options.dispatch);
    const toggles = (this.options.toggles ?? []).map((t): MenuItemConstructorOptions => ({
      label: t.label,
      type: 'checkbox',
      checked: t.checked(),
      click: (item) => { t.set(item.checked); this.render(); },
    }));
    if (!toggles.length) return template;
    // Before "Quit", which the model always puts last.
    return [...template.slice(0, -1), ...toggles, ...template.slice(-1)];
  }

  private schedule(ms: number | undefined): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (ms === undefined || this.disposed) return;
    this.timer = this.options.clock.setTimer(() => { this.timer = undefined; this.render(); }, ms);
  }

  dispose(): void {
    this.disposed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }
}

/**
 * Where tray actions go: the agent's api, the windows, or quitting. Errors of calls are reported, not thrown — but a
 * call refused for a step-up opens the window its action names for that (`onStepUp`), where the user can give one.
 */
export function trayDispatcher(deps: {
  call: (method: Extract<TrayAction, { type: 'call' }>['method'], input: Record<string, string>) => Promise<unknown>;
  open: (view: Extract<TrayAction, { type: 'open' }>['view'], params: Record<string, string>) => void;
  quit: () => void;
  onError: (error: unknown) => void;
}): (action: TrayAction) => void {
  return (action) => {
    switch (action.type) {
      case 'call': {
        const { onStepUp } = action;
        void deps.call(action.method, action.input).catch((error: unknown) => {
          if (onStepUp && isAgentError(error, 'stepup_required')) deps.open(onStepUp.view, onStepUp.params ?? {});
          else deps.onError(error);
        });
        return;
      }
      case 'open':
        deps.open(action.view, action.params ?? {});
        return;
      case 'quit':
        deps.quit();
    }
  };
}
