// Stint's two windows: a small frameless popover by the tray for one decision (request, step-up, the step-up of a
// resume, approve, deny, extend; Esc closes it) and the main window (grants, approvals, history, settings). Both show
// the same bundled renderer, which picks its view from `?view=…` (renderer/src/route.ts). Windows are made by an
// injected factory (index.ts: createSecureWindow), so where they go and what they load is tested under Node.
import { pathToFileURL } from 'node:url';
import type { TrayAction } from '../../agent/core/models';
import { STEP_UP_PARTITION } from './stepup-origin';

export type OpenView = Extract<TrayAction, { type: 'open' }>['view'];
export type WindowKind = 'popover' | 'main';

const POPOVER_VIEWS: ReadonlySet<OpenView> = new Set(['request', 'stepup', 'resume', 'approve', 'deny', 'extend']);

export function windowFor(view: OpenView): WindowKind {
  return POPOVER_VIEWS.has(view) ? 'popover' : 'main';
}

/** Where the UI is loaded from: the bundled files, or the step-up origin (same files, served in its partition). */
export type UiLocation = { kind: 'file'; indexFile: string } | { kind: 'origin'; origin: string };

export function partitionFor(ui: UiLocation): string | undefined {
  return ui.kind === 'origin' ? STEP_UP_PARTITION : undefined;
}

export function pageUrl(view: OpenView, params: Record<string, string>, ui: UiLocation): string {
  const search = new URLSearchParams({ view, ...params }).toString();
  return ui.kind === 'file' ? `${pathToFileURL(ui.indexFile).href}?${search}` : `${ui.origin}/_stint/index.html?${search}`;
}

export interface Rect { x: number; y: number; width: number; height: number }

export const POPOVER_SIZE = { width: 380, height: 520 };
const GAP = 6;

/**
 * Next to the tray icon: below it when the tray is at the top of the screen (macOS, most Linux panels), above it
 * when at the bottom (Windows); centred on the icon and kept on screen. Linux often does not report tray bounds
 * (all zeros): then the top-right corner of the work area.
 */
export function popoverPosition(tray: Rect | undefined, size: { width: number; height: number }, workArea: Rect): { x: number; y: number } {
  const clamp = (v: number, min: number, max: number) => Math.round(Math.min(Math.max(v, min), Math.max(min, max)));
  const maxX = workArea.x + workArea.width - size.width - GAP;
  const maxY = workArea.y + workArea.height - size.height - GAP;
  if (!tray || (tray.width === 0 && tray.height === 0)) return { x: clamp(maxX, workArea.x + GAP, maxX), y: workArea.y + GAP };
  const x = clamp(tray.x + tray.width / 2 - size.width / 2, workArea.x + GAP, maxX);
  const trayCentreY = tray.y + tray.height / 2;
  const atTop = trayCentreY < workArea.y + workArea.height / 2;
  const y = atTop ? tray.y + tray.height + GAP : tray.y - size.height - GAP;
  return { x, y: clamp(y, workArea.y + GAP, maxY) };
}

export function isEscape(input: { type: string; key: string; alt?: boolean; control?: boolean; meta?: boolean; shift?: boolean }): boolean {
  return input.type === 'keyDown' && input.key === 'Escape' && !input.alt && !input.control && !input.meta && !input.shift;
}

export interface WindowLike {
  /** Its webContents id: what the IPC sender check compares. */
  readonly contentsId: number;
  load(url: string): void;
  show(): void;
  close(): void;
  isDestroyed(): boolean;
  setPosition(x: number, y: number): void;
  send(channel: string, payload: unknown): void;
  onClosed(listener: () => void): void;
  onInput(listener: (input: { type: string; key: string; alt?: boolean; control?: boolean; meta?: boolean; shift?: boolean }) => void): void;
}

export interface WindowFactory {
  create(kind: WindowKind, partition: string | undefined): WindowLike;
  trayBounds(): Rect | undefined;
  workAreaNear(point: { x: number; y: number } | undefined): Rect;
}

interface Open { window: WindowLike; uiKey: string; url: string }

export class WindowManager {
  private readonly open_ = new Map<WindowKind, Open>();

  constructor(private readonly options: { factory: WindowFactory; ui: () => UiLocation }) {}

  /** Show a view: in the popover for one decision, in the main window otherwise. Reuses an open window. */
  open(view: OpenView, params: Record<string, string> = {}): WindowLike {
    const kind = windowFor(view);
    const ui = this.options.ui();
    const uiKey = JSON.stringify(ui);
    const url = pageUrl(view, params, ui);
    let entry = this.open_.get(kind);
    if (entry && (entry.window.isDestroyed() || entry.uiKey !== uiKey)) {
      // The server (hence the step-up origin and partition) changed: a window cannot change its session.
      entry.window.close();
      this.open_.delete(kind);
      entry = undefined;
    }
    if (!entry) {
      const window = this.options.factory.create(kind, partitionFor(ui));
      entry = { window, uiKey, url: '' };
      const created = entry;
      this.open_.set(kind, created);
      window.onClosed(() => { if (this.open_.get(kind) === created) this.open_.delete(kind); });
      if (kind === 'popover') {
        window.onInput((input) => { if (isEscape(input)) window.close(); });
      }
    }
    // The popover always starts its one decision afresh (its dialog may have been dismissed inside the page).
    if (entry.url !== url || kind === 'popover') {
      entry.url = url;
      entry.window.load(url);
    }
    if (kind === 'popover') this.place(entry.window);
    entry.window.show();
    return entry.window;
  }

  private place(window: WindowLike): void {
    const tray = this.options.factory.trayBounds();
    const near = tray ? { x: tray.x + tray.width / 2, y: tray.y + tray.height / 2 } : undefined;
    const { x, y } = popoverPosition(tray, POPOVER_SIZE, this.options.factory.workAreaNear(near));
    window.setPosition(x, y);
  }

  closePopover(): void {
    this.open_.get('popover')?.window.close();
  }

  /** webContents ids of our windows: the only senders IPC accepts. */
  ids(): Set<number> {
    return new Set([...this.open_.values()].filter((e) => !e.window.isDestroyed()).map((e) => e.window.contentsId));
  }

  all(): WindowLike[] {
    return [...this.open_.values()].map((e) => e.window).filter((w) => !w.isDestroyed());
  }

  closeAll(): void {
    for (const window of this.all()) window.close();
  }
}
