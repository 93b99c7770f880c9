// When a toast has had its say. A toast announces something — an approval asked of me, access that is ready or about to
// end, a decision — and goes when that is over (the request was decided, the grant ended or was extended: the phase
// the agent publishes says so) or, for what is only news, after a while. Pure rules over the toast, the agent's state
// and the time; useAgent applies them. Also the decisions about the browser's own (OS) notifications in the web host.
import type { AgentNotification, AgentState, LocalGrant } from '../../shared/contract/agent';
import { isLive } from './policy';

/** A plain toast ("Settings saved.", "Verified"): read it and it is done. */
export const PLAIN_TOAST_MS = 8_000;
/** A decision or an end (denied, ended, revoked): the views show it too, so the toast need not stay. */
export const OUTCOME_TOAST_MS = 15_000;
/** "Access approved" stays while its grant lasts, but not for ever: the Active view has the same actions. */
export const APPROVED_TOAST_MS = 60_000;
/** Pointer over a toast or focus in one: time-limited toasts keep at least this long once it leaves. */
export const HOLD_GRACE_MS = 4_000;

export interface ToastTiming {
  notification?: AgentNotification;
  /** When it was shown, on this computer's clock (ms). */
  shownAt: number;
  /**
   * The state version on screen when it was shown. The agent sends a notification just before the snapshot it is
   * about, so until a newer snapshot arrives the thing it announces may not be in the state yet.
   */
  shownVersion: number;
}

/** How long a toast may stay at most (ms); undefined: as long as what it announces lasts. */
export function toastLifetime(n: AgentNotification | undefined): number | undefined {
  if (!n) return PLAIN_TOAST_MS;
  switch (n.kind) {
    case 'approval_asked': return n.requestId ? undefined : OUTCOME_TOAST_MS;
    case 'expiring': return n.grantId ? undefined : OUTCOME_TOAST_MS;
    case 'approved': return APPROVED_TOAST_MS;
    // Break-glass is not news that may slip by: it stays until dismissed.
    case 'breakglass': return undefined;
    default: return OUTCOME_TOAST_MS;
  }
}

function grantFor(state: AgentState, n: AgentNotification): LocalGrant | undefined {
  return state.grants.find((g) => (n.grantId !== undefined && g.grant.id === n.grantId) || (n.requestId !== undefined && g.grant.requestId === n.requestId));
}

/** Is this toast still worth showing, given the agent's state and the time? */
export function toastRelevant(toast: ToastTiming, state: AgentState, now: number): boolean {
  const n = toast.notification;
  const lifetime = toastLifetime(n);
  if (lifetime !== undefined && now - toast.shownAt >= lifetime) return false;
  if (!n) return true;
  const newer = state.version > toast.shownVersion;
  switch (n.kind) {
    case 'approval_asked':
      // Until a snapshot newer than the notification arrives, the request may simply not be in the state yet.
      return !n.requestId || !newer || state.approvals.some((r) => r.id === n.requestId && r.state === 'pending_approval');
    case 'approved': {
      // The grant may not be in the state yet (activation still running): then only the lifetime ends it.
      const g = grantFor(state, n);
      return !g || isLive(g);
    }
    case 'expiring': {
      if (!n.grantId) return true;
      const g = grantFor(state, n);
      if (!g) return !newer;
      if (!isLive(g)) return false;
      // No longer ending soon (extended): over. Until a snapshot newer than the warning arrives, the state may not
      // say "ending soon" yet.
      return g.phase === 'ending_soon' || !newer;
    }
    default:
      return true;
  }
}

/** The toasts still worth showing: the same array when none goes (so React need not re-render). */
export function reviewToasts<T extends ToastTiming>(toasts: T[], state: AgentState, now: number): T[] {
  const kept = toasts.filter((t) => toastRelevant(t, state, now));
  return kept.length === toasts.length ? toasts : kept;
}

/** While the user points at or is in the toasts, time-limited ones keep at least HOLD_GRACE_MS more. */
export function holdToasts<T extends ToastTiming>(toasts: T[], now: number): T[] {
  let changed = false;
  const held = toasts.map((t) => {
    const lifetime = toastLifetime(t.notification);
    if (lifetime === undefined || t.shownAt + lifetime - now >= HOLD_GRACE_MS) return t;
    changed = true;
    return { ...t, shownAt: now + HOLD_GRACE_MS - lifetime };
  });
  return changed ? held : toasts;
}

/**
 * When to look again (ms from now): the next lifetime to run out; undefined: only on a new state (a grant's end or
 * extension comes as one, with its phase).
 */
export function msUntilReview(toasts: ToastTiming[], now: number): number | undefined {
  let next = Infinity;
  for (const t of toasts) {
    const lifetime = toastLifetime(t.notification);
    if (lifetime !== undefined) next = Math.min(next, t.shownAt + lifetime - now);
  }
  return Number.isFinite(next) ? Math.max(0, next) : undefined;
}

/** Whose toasts these are: notifications belong to the signed-in user, and go when that changes. */
export function toastOwner(state: AgentState | undefined): string | undefined {
  return state?.session.status === 'signed_in' ? state.session.user.sub : undefined;
}

// ---- the browser's notifications (web host only: the Electron shell shows native ones itself) ----

export type DesktopPermission = NotificationPermission | 'unsupported';

export interface DesktopContext {
  /** Inside the Electron app (window.stint exists). */
  electron: boolean;
  permission: DesktopPermission;
}

/** Offer "Get desktop notifications?" only in a browser that has not been asked yet and was not told "Not now". */
export function shouldOfferDesktop(ctx: DesktopContext & { declined: boolean }): boolean {
  return !ctx.electron && ctx.permission === 'default' && !ctx.declined;
}

/** An agent notification also goes to the OS when allowed and the page is not being looked at. */
export function shouldNotifyDesktop(ctx: DesktopContext & { visibility: DocumentVisibilityState }): boolean {
  return !ctx.electron && ctx.permission === 'granted' && ctx.visibility === 'hidden';
}

export function desktopContext(): DesktopContext {
  return {
    electron: 'stint' in window,
    permission: typeof Notification === 'undefined' ? 'unsupported' : Notification.permission,
  };
}
