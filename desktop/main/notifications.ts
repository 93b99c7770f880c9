// Native notifications from the agent's `{type:'notification'}` events. macOS shows action buttons; Windows shows
// an approval asked as toast XML whose button and body open the stint://approve/<id> deep link (protocol activation:
// a Windows toast button reaches the app only through a link, and deep links never act); Linux gets click-to-open.
// Approve and Deny only OPEN the approval view — a notification button never approves silently (step-up and the
// user's decision happen in the window). Electron is injected: a Notification constructor.
import type { AgentEvent, AgentNotification, NotificationAction } from '../../shared/contract/agent';
import type { OpenView } from './windows';
import { PROTOCOL } from './deep-links';
import { kindWords } from '../../shared/domain/kinds';

export interface NotificationLike {
  show(): void;
  close(): void;
  on(event: 'click', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  on(event: 'action', listener: (details: { actionIndex: number }, index?: number) => void): unknown;
}

export interface NotificationOptionsLike {
  title: string;
  body: string;
  actions?: Array<{ type: 'button'; text: string }>;
  closeButtonText?: string;
  urgency?: 'normal' | 'critical' | 'low';
  silent?: boolean;
  toastXml?: string;
}

export type NotificationConstructor = new (options: NotificationOptionsLike) => NotificationLike;

/** What a notification's action leads to: a window view, or an agent call that needs no decision. */
export type NotificationEffect =
  | { type: 'open'; view: OpenView; params: Record<string, string> }
  | { type: 'call'; method: 'openPsql' | 'copyConnectionUri'; input: { grantId: string } };

/** A button's words; the client's name from the resource's kind ("Open in psql", "Open in mariadb"). */
function label(action: NotificationAction, n: AgentNotification): string {
  const words: Record<NotificationAction, string> = {
    approve: 'Approve…',
    deny: 'Deny…',
    open_psql: `Open in ${kindWords(n.resourceKind).client}`,
    copy_uri: 'Copy URI',
    extend: 'Extend…',
    open: 'Open',
  };
  return words[action];
}

export function effectOf(action: NotificationAction, n: AgentNotification): NotificationEffect {
  const requestId = n.requestId;
  const grantId = n.grantId;
  switch (action) {
    case 'approve':
      return requestId ? { type: 'open', view: 'approve', params: { requestId } } : { type: 'open', view: 'main', params: {} };
    case 'deny':
      return requestId ? { type: 'open', view: 'deny', params: { requestId } } : { type: 'open', view: 'main', params: {} };
    case 'open_psql':
      return grantId ? { type: 'call', method: 'openPsql', input: { grantId } } : { type: 'open', view: 'main', params: {} };
    case 'copy_uri':
      return grantId ? { type: 'call', method: 'copyConnectionUri', input: { grantId } } : { type: 'open', view: 'main', params: {} };
    case 'extend':
      return grantId ? { type: 'open', view: 'extend', params: { grantId } } : { type: 'open', view: 'main', params: {} };
    case 'open':
      return { type: 'open', view: 'main', params: {} };
  }
}

/** A click on the notification itself: the view where the user can act on it (never the action itself). */
export function clickEffect(n: AgentNotification): NotificationEffect {
  switch (n.kind) {
    case 'approval_asked':
      return effectOf('approve', n);
    case 'expiring':
      return effectOf('extend', n);
    default:
      return { type: 'open', view: 'main', params: {} };
  }
}

const xml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Windows: the toast for an approval asked, with an Approve… button; both open the approval view by deep link. */
export function approvalToastXml(n: AgentNotification): string | undefined {
  if (n.kind !== 'approval_asked' || !n.requestId) return undefined;
  const link = xml(`${PROTOCOL}://approve/${encodeURIComponent(n.requestId)}`);
  return `<toast activationType="protocol" launch="${link}" scenario="reminder"><visual><binding template="ToastGeneric">`
    + `<text>${xml(n.title)}</text><text>${xml(n.body)}</text></binding></visual>`
    + `<actions><action content="${xml(label('approve', n))}" activationType="protocol" arguments="${link}"/>`
    + '<action content="Later" activationType="system" arguments="dismiss"/></actions></toast>';
}

export function nativeOptions(n: AgentNotification, platform: NodeJS.Platform): NotificationOptionsLike {
  const buttons = platform === 'darwin' ? n.actions.filter((a) => a !== 'open') : [];
  const toastXml = platform === 'win32' ? approvalToastXml(n) : undefined;
  return {
    ...(toastXml ? { toastXml } : {}),
    title: n.title,
    body: n.body,
    ...(buttons.length ? { actions: buttons.map((a) => ({ type: 'button' as const, text: label(a, n) })), closeButtonText: 'Close' } : {}),
    ...(n.kind === 'approval_asked' || n.kind === 'revoked' || n.kind === 'security' ? { urgency: 'critical' as const } : {}),
  };
}

export class NotificationController {
  /** Held so they are not garbage-collected (their click handlers would go with them) and so an id replaces. */
  private readonly shown = new Map<string, NotificationLike>();

  constructor(private readonly options: {
    Notification: NotificationConstructor;
    isSupported: () => boolean;
    platform: NodeJS.Platform;
    act: (effect: NotificationEffect) => void;
  }) {}

  handle(event: AgentEvent): void {
    if (event.type === 'notification') this.show(event.notification);
  }

  show(n: AgentNotification): void {
    if (!this.options.isSupported()) return;
    this.shown.get(n.id)?.close();
    const opts = nativeOptions(n, this.options.platform);
    const buttons = this.options.platform === 'darwin' ? n.actions.filter((a) => a !== 'open') : [];
    const native = new this.options.Notification(opts);
    native.on('click', () => this.options.act(clickEffect(n)));
    native.on('action', (details, index) => {
      const action = buttons[details?.actionIndex ?? index ?? -1];
      if (action) this.options.act(effectOf(action, n));
    });
    native.on('close', () => { if (this.shown.get(n.id) === native) this.shown.delete(n.id); });
    this.shown.set(n.id, native);
    native.show();
  }

  get count(): number {
    return this.shown.size;
  }

  dispose(): void {
    for (const n of this.shown.values()) n.close();
    this.shown.clear();
  }
}
