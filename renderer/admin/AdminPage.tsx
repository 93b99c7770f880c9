// The admin console served by the grant server at /admin/ (signed in at the IdP by then, and an administrator: the
// server refuses the page to anyone else). It renders the Stint window's own admin views (src/views/Admin.tsx) in the
// app context they expect, with the server adapter (api.ts) as their client: what an admin sees and does here is what
// they see and do in the window, except the Webhooks and Policy versions tabs (not in this page's API yet).
import { useCallback, useEffect, useMemo, useState } from 'react';
import type { AgentState } from '../../shared/contract/agent';
import type { PageSession } from '../../shared/contract/approve-page';
import { AppContextValue, type AppContext } from '../src/context';
import { errorCode, errorMessage, type Toast } from '../src/useAgent';
import { Admin } from '../src/views/Admin';
import type { AdminPageApi } from './api';

type Load = { phase: 'loading' } | { phase: 'signed_out' } | { phase: 'failed'; message: string } | { phase: 'ready'; session: PageSession; clockOffsetMs: number };

const MAX_TOASTS = 4;

/** What the views read of the agent's state: who is signed in, the server's clock offset. Resources are not known here (ids are shown). */
function pageState(session: PageSession, clockOffsetMs: number): AgentState {
  return {
    version: 0,
    session: { status: 'signed_in', user: { ...session.user, groups: [], admin: true, approver: false } },
    server: { url: window.location.origin, status: 'online', clockOffsetMs },
    resources: [], requests: [], approvals: [], grants: [],
  };
}

export function AdminPage({ api }: { api: AdminPageApi }) {
  const [load, setLoad] = useState<Load>({ phase: 'loading' });
  const [toasts, setToasts] = useState<Toast[]>([]);

  useEffect(() => {
    api.session().then(
      // The countdowns run on this computer's clock against the server's deadlines.
      (session) => setLoad({ phase: 'ready', session, clockOffsetMs: api.clockOffsetMs() }),
      (error: unknown) => setLoad(errorCode(error) === 'page_session_required' ? { phase: 'signed_out' } : { phase: 'failed', message: errorMessage(error) }),
    );
  }, [api]);

  const toast = useCallback((t: Omit<Toast, 'key'>) => setToasts((list) => [...list, { ...t, key: Date.now() + Math.random() }].slice(-MAX_TOASTS)), []);
  const dismiss = (key: number) => setToasts((list) => list.filter((t) => t.key !== key));
  const signOut = async () => {
    await api.signOut().catch(() => undefined);
    setLoad({ phase: 'signed_out' });
  };

  const ctx = useMemo((): AppContext | undefined => {
    if (load.phase !== 'ready') return undefined;
    const alert = (message: string) => toast({ title: message });
    return {
      client: api.client,
      state: pageState(load.session, load.clockOffsetMs),
      // The admin views neither navigate, open the window's dialogs, nor read settings: there are none on this page.
      setSettings: () => undefined, go: () => undefined, open: () => undefined, close: () => undefined,
      toast, alert,
      run: async (method, input) => {
        try {
          return await api.client.call(method, input);
        } catch (error) {
          alert(errorMessage(error));
          return undefined;
        }
      },
    };
  }, [api, load, toast]);

  return (
    <div className="app">
      <header className="topbar">
        <h1>Stint — admin console</h1>
        {load.phase === 'ready' && (
          <span className="muted" data-testid="admin-who">
            Signed in as {load.session.user.name ?? load.session.user.sub} <button type="button" onClick={() => void signOut()}>Sign out</button>
          </span>
        )}
      </header>
      <main className="content">
        {load.phase === 'loading' && <p className="muted">Loading…</p>}
        {load.phase === 'signed_out' && <p role="alert">You are signed out of the admin console. <a href="/admin/">Sign in again</a>.</p>}
        {load.phase === 'failed' && <p role="alert" className="error">The admin console could not start: {load.message}</p>}
        {ctx && <AppContextValue.Provider value={ctx}><Admin withAgentOnlyTabs={false} /></AppContextValue.Provider>}
      </main>
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.key} className={`toast toast-${t.tone ?? 'info'}`}>
            <p className="toast-title">{t.title}</p>
            {t.body && <p className="toast-body">{t.body}</p>}
            <div className="toast-actions">
              <button type="button" className="link-button" aria-label={`Dismiss: ${t.title}`} onClick={() => dismiss(t.key)}>Dismiss</button>
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
