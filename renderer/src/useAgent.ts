// The UI's view of the agent: connect once, take the state from `getState`, then follow `state` events (dropping
// snapshots older than the one shown), and keep notifications (toasts) and background problems (alerts) for display.
// Toasts belong to the signed-in user and go when what they announce is over (rules in notifications.ts); in the web
// host, agent notifications also reach the OS while the page is hidden, once the user has allowed it.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { AgentNotification, AgentState } from '../../shared/contract/agent';
import type { ProblemCode } from '../../shared/contract/problem';
import { AgentCallError, connectAgent, type AgentClient } from './agent/client';
import { problemWords } from './problem-words';
import {
  desktopContext, holdToasts, msUntilReview, reviewToasts, shouldNotifyDesktop, shouldOfferDesktop, toastOwner,
} from './notifications';

export type Connection =
  | { status: 'connecting' }
  | { status: 'failed'; message: string }
  | { status: 'ready'; client: AgentClient };

export interface Toast { key: number; title: string; body?: string; notification?: AgentNotification; tone?: 'ok' | 'info' }
/** A toast on screen: when it was shown, against which state (see notifications.ts). */
export interface ShownToast extends Toast { shownAt: number; shownVersion: number }
export interface Alert { key: number; message: string }

const MAX_TOASTS = 4;
const CONNECT_TIMEOUT_MS = 10_000;
/** Look at the toasts again at least this often (a grant hours from its end needs no earlier timer). */
const MAX_REVIEW_MS = 60_000;
const DECLINED_KEY = 'stint.desktopNotifications';

function declinedDesktop(): boolean {
  try {
    return localStorage.getItem(DECLINED_KEY) === 'declined';
  } catch {
    return false;
  }
}

/** Plain words for a failed call: what the UI says for its problem code (problem-words.ts). */
export function errorMessage(error: unknown): string {
  if (error instanceof AgentCallError) return problemWords(error.problem);
  return 'Something went wrong talking to the Stint agent. Try again; details are in the agent log.';
}

/** The failed call's problem code: the grant server's own (e.g. stepup_required) when it refused. */
export function errorCode(error: unknown): ProblemCode | undefined {
  return error instanceof AgentCallError ? error.code : undefined;
}

/** Keep the newer snapshot: `version` only ever increases in the agent. */
export function newerState(current: AgentState | undefined, next: AgentState): AgentState | undefined {
  return !current || next.version >= current.version ? next : current;
}

export function useAgent() {
  const [connection, setConnection] = useState<Connection>({ status: 'connecting' });
  const [state, setState] = useState<AgentState>();
  const [toasts, setToasts] = useState<ShownToast[]>([]);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [desktopOffer, setDesktopOffer] = useState(false);
  const [reviews, setReviews] = useState(0);
  const nextKey = useRef(1);
  /** The newest state, for callbacks that run between renders. */
  const latest = useRef<AgentState | undefined>(undefined);
  /** The toasts' container: while the pointer or focus is in it, toasts do not time out. */
  const toastRegion = useRef<HTMLDivElement>(null);
  /** The OS notifications shown, by notification id: closed when their toast goes. */
  const desktopShown = useRef(new Map<string, Notification>());

  const toast = useCallback((t: Omit<Toast, 'key'>) => {
    const key = nextKey.current++;
    const shown: ShownToast = { ...t, key, shownAt: Date.now(), shownVersion: latest.current?.version ?? 0 };
    setToasts((list) => {
      // A notification with the same id replaces the earlier one (e.g. "ends in 5 minutes" then "in 1 minute").
      const rest = t.notification ? list.filter((x) => x.notification?.id !== t.notification!.id) : list;
      return [...rest, shown].slice(-MAX_TOASTS);
    });
  }, []);
  const dismissToast = useCallback((key: number) => setToasts((list) => list.filter((t) => t.key !== key)), []);
  const alert = useCallback((message: string) => {
    const key = nextKey.current++;
    setAlerts((list) => [...list.filter((a) => a.message !== message), { key, message }]);
  }, []);
  const dismissAlert = useCallback((key: number) => setAlerts((list) => list.filter((a) => a.key !== key)), []);

  /** A newer snapshot replaces the one shown; when someone else is signed in now (or nobody), the toasts go. */
  const applyState = useCallback((incoming: AgentState) => {
    const current = latest.current;
    const next = newerState(current, incoming);
    if (!next || next === current) return;
    latest.current = next;
    if (current && toastOwner(current) !== toastOwner(next)) {
      setToasts([]);
      setDesktopOffer(false);
    }
    setState(next);
  }, []);

  /** Ask "Get desktop notifications?" at a moment they make sense: the first request sent, the first approval asked. */
  const offerDesktop = useCallback(() => {
    if (shouldOfferDesktop({ ...desktopContext(), declined: declinedDesktop() })) setDesktopOffer(true);
  }, []);
  const answerDesktopOffer = useCallback(async (allow: boolean) => {
    setDesktopOffer(false);
    if (!allow) {
      try { localStorage.setItem(DECLINED_KEY, 'declined'); } catch { /* asked again next time: no harm */ }
      return;
    }
    try {
      const permission = await Notification.requestPermission();
      if (permission === 'granted') toast({ title: 'Desktop notifications are on', body: 'Stint tells you here and on your desktop while this tab is in the background.', tone: 'ok' });
    } catch {
      // An old browser without the promise form: nothing more to do.
    }
  }, [toast]);

  const notified = useCallback((n: AgentNotification) => {
    toast({ title: n.title, body: n.body, notification: n });
    if (n.kind === 'approval_asked') offerDesktop();
    if (!shouldNotifyDesktop({ ...desktopContext(), visibility: document.visibilityState })) return;
    try {
      desktopShown.current.get(n.id)?.close(); // the same tag replaces it anyway; this frees the old handle first
      const shown = new Notification(n.title, { body: n.body, tag: n.id });
      shown.onclick = () => { window.focus(); shown.close(); };
      desktopShown.current.set(n.id, shown);
    } catch {
      // Some browsers only allow notifications from a service worker: the toast is still there.
    }
  }, [toast, offerDesktop]);

  // Toasts go when what they announce is over, or after their time (not while the user points at or is in them).
  useEffect(() => {
    if (!state || toasts.length === 0) return;
    const now = Date.now();
    const region = toastRegion.current;
    const held = !!region && (region.matches(':hover') || region.contains(document.activeElement));
    const list = held ? holdToasts(toasts, now) : toasts;
    const kept = reviewToasts(list, state, now);
    if (kept !== toasts) {
      // Reviewed again on the list as it is by then: a toast added since this render (the "Approved" that comes with
      // the very state that ends the "Approval asked") must not be dropped by an update computed without it.
      setToasts((current) => reviewToasts(held ? holdToasts(current, now) : current, state, now));
      return;
    }
    const wait = msUntilReview(toasts, now);
    if (wait === undefined) return;
    const timer = setTimeout(() => setReviews((n) => n + 1), Math.min(wait + 10, MAX_REVIEW_MS));
    return () => clearTimeout(timer);
  }, [state, toasts, reviews]);

  // An OS notification goes with its toast (dismissed, over, or the user changed).
  useEffect(() => {
    const live = new Set(toasts.map((t) => t.notification?.id));
    for (const [id, shown] of desktopShown.current) {
      if (live.has(id)) continue;
      shown.close();
      desktopShown.current.delete(id);
    }
  }, [toasts]);

  useEffect(() => {
    let stopped = false;
    let unsubscribe: (() => void) | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A bridge that never answers would otherwise leave "Connecting…" on screen for ever.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(AgentCallError.local('agent_unreachable', 'The Stint agent isn’t answering. Quit Stint and start it again.')), CONNECT_TIMEOUT_MS);
    });
    Promise.race([connectAgent(), timeout])
      .then(async (raw) => {
        if (stopped) return;
        const client = watchRequests(raw, offerDesktop);
        unsubscribe = client.subscribe((event) => {
          if (event.type === 'state') applyState(event.state);
          else if (event.type === 'notification') notified(event.notification);
          else alert(problemWords(event.problem));
        });
        const initial = await Promise.race([client.call('getState', {}), timeout]);
        clearTimeout(timer);
        if (stopped) return;
        applyState(initial);
        setConnection({ status: 'ready', client });
        // For bench/ui.ts: when the window first shows the agent's state.
        requestAnimationFrame(() => performance.mark('stint:ready'));
      })
      .catch((error: unknown) => {
        clearTimeout(timer);
        if (!stopped) setConnection({ status: 'failed', message: errorMessage(error) });
      });
    return () => {
      stopped = true;
      clearTimeout(timer);
      unsubscribe?.();
    };
  }, [applyState, notified, alert, offerDesktop]);

  return { connection, state, toasts, alerts, toast, dismissToast, alert, dismissAlert, toastRegion, desktopOffer, answerDesktopOffer };
}

/** The client the UI uses, noting when the user's request has gone out (the moment to offer desktop notifications). */
function watchRequests(client: AgentClient, onRequest: () => void): AgentClient {
  const call = (async (method, input) => {
    const output = await client.call(method, input);
    if (method === 'createRequest') onRequest();
    return output;
  }) as AgentClient['call'];
  return { call, subscribe: (listener) => client.subscribe(listener) };
}
