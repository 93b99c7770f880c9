// The UI's view of the agent: connect once, take the state from `getState`, then follow `state` events (dropping
// snapshots older than the one shown), and keep notifications (toasts) and background problems (alerts) for display.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { AgentNotification, AgentState } from '../../shared/contract/agent';
import { AgentCallError, connectAgent, type AgentClient } from './agent/client';

export type Connection =
  | { status: 'connecting' }
  | { status: 'failed'; message: string }
  | { status: 'ready'; client: AgentClient };

export interface Toast { key: number; title: string; body?: string; notification?: AgentNotification; tone?: 'ok' | 'info' }
export interface Alert { key: number; message: string }

const MAX_TOASTS = 4;
const CONNECT_TIMEOUT_MS = 10_000;

/** Plain words for a failed call: the agent's own messages already are; a few transport codes need saying. */
export function errorMessage(error: unknown): string {
  if (error instanceof AgentCallError) {
    if (error.code === 'unknown_method') return 'This version of the Stint agent can’t do that yet.';
    if (error.code === 'invalid_input') return `Stint couldn’t use what was entered: ${error.message}`;
    return error.message;
  }
  return 'Something went wrong talking to the Stint agent. Try again; details are in the agent log.';
}

export function errorCode(error: unknown): string | undefined {
  return error instanceof AgentCallError ? error.code : undefined;
}

/** Keep the newer snapshot: `version` only ever increases in the agent. */
export function newerState(current: AgentState | undefined, next: AgentState): AgentState | undefined {
  return !current || next.version >= current.version ? next : current;
}

export function useAgent() {
  const [connection, setConnection] = useState<Connection>({ status: 'connecting' });
  const [state, setState] = useState<AgentState>();
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const nextKey = useRef(1);

  const toast = useCallback((t: Omit<Toast, 'key'>) => {
    const key = nextKey.current++;
    setToasts((list) => {
      // A notification with the same id replaces the earlier one (e.g. "ends in 5 minutes" then "in 1 minute").
      const rest = t.notification ? list.filter((x) => x.notification?.id !== t.notification!.id) : list;
      return [...rest, { ...t, key }].slice(-MAX_TOASTS);
    });
  }, []);
  const dismissToast = useCallback((key: number) => setToasts((list) => list.filter((t) => t.key !== key)), []);
  const alert = useCallback((message: string) => {
    const key = nextKey.current++;
    setAlerts((list) => [...list.filter((a) => a.message !== message), { key, message }]);
  }, []);
  const dismissAlert = useCallback((key: number) => setAlerts((list) => list.filter((a) => a.key !== key)), []);

  useEffect(() => {
    let stopped = false;
    let unsubscribe: (() => void) | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A bridge that never answers would otherwise leave "Connecting…" on screen for ever.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AgentCallError('agent_unreachable', 'The Stint agent isn’t answering. Quit Stint and start it again.')), CONNECT_TIMEOUT_MS);
    });
    Promise.race([connectAgent(), timeout])
      .then(async (client) => {
        if (stopped) return;
        unsubscribe = client.subscribe((event) => {
          if (event.type === 'state') setState((current) => newerState(current, event.state));
          else if (event.type === 'notification') toast({ title: event.notification.title, body: event.notification.body, notification: event.notification });
          else alert(event.problem.message);
        });
        const initial = await Promise.race([client.call('getState', {}), timeout]);
        clearTimeout(timer);
        if (stopped) return;
        setState((current) => newerState(current, initial));
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
  }, [toast, alert]);

  return { connection, state, toasts, alerts, toast, dismissToast, alert, dismissAlert };
}
