// The Stint window: connect to the agent, follow its state, and show one section at a time. Requests, step-up,
// approvals, extending and ending access open as dialogs (Esc closes them; focus returns where it was).
import { useCallback, useEffect, useMemo, useRef, useState, type RefObject } from 'react';
import type { AgentInput, AgentMethod, AgentNotification, AgentSettings, AgentState, NotificationAction } from '../../shared/contract/agent';
import type { StepUpProof } from '../../shared/contract/http';
import { kindWords } from '../../shared/domain/kinds';
import type { AgentClient } from './agent/client';
import { AppContextValue, type AppContext, type DialogSpec, type View } from './context';
import { routeFrom } from './route';
import { StepUpSlot } from './StepUpSlot';
import { errorMessage, useAgent, type Alert, type Toast } from './useAgent';
import { Active } from './views/Active';
import { ApproveDialog, DenyDialog } from './views/ApprovalDialogs';
import { copyText } from './views/ConnectionDetails';
import { Approvals } from './views/Approvals';
import { ExtendDialog, ReleaseDialog } from './views/GrantDialogs';
import { History } from './views/History';
import { Admin } from './views/Admin';
import { RequestForm } from './views/RequestForm';
import { Resources } from './views/Resources';
import { Settings } from './views/Settings';
import { hostOf, SignIn } from './views/SignIn';
import { isLive, resourceLabel, resumeSummary } from './policy';
import { formatDuration } from './format';
import { Waiting } from './views/Waiting';

/** `admin`: shown only to administrators (the server refuses the calls of anyone else anyway). */
const VIEWS: { view: View; label: string; signedIn: boolean; admin?: boolean }[] = [
  { view: 'signin', label: 'Sign in', signedIn: false },
  { view: 'active', label: 'Active', signedIn: true },
  { view: 'waiting', label: 'Waiting', signedIn: true },
  { view: 'resources', label: 'Request access', signedIn: true },
  { view: 'approvals', label: 'Approvals', signedIn: true },
  { view: 'history', label: 'History', signedIn: true },
  { view: 'admin', label: 'Admin', signedIn: true, admin: true },
  { view: 'settings', label: 'Settings', signedIn: false },
];

export function App() {
  const agent = useAgent();
  const { connection, state } = agent;
  return (
    <div className="app">
      <a className="skip-link" href="#content">Skip to content</a>
      <header className="topbar">
        <h1>Stint</h1>
        {state && <Account state={state} />}
      </header>
      <Alerts alerts={agent.alerts} dismiss={agent.dismissAlert} />
      {connection.status === 'connecting' && <main className="content"><p className="muted">Connecting to the agent…</p></main>}
      {connection.status === 'failed' && (
        <main className="content">
          <p role="alert" className="error">{connection.message}</p>
        </main>
      )}
      {connection.status === 'ready' && state && (
        <Connected client={connection.client} state={state} toast={agent.toast} alert={agent.alert} toasts={agent.toasts} dismissToast={agent.dismissToast}
          toastRegion={agent.toastRegion} desktopOffer={agent.desktopOffer} answerDesktopOffer={agent.answerDesktopOffer} />
      )}
    </div>
  );
}

/** Who is signed in where; the server's status only while signed in (signed out, nothing talks to the server). */
function Account({ state }: { state: AgentState }) {
  const { session, server } = state;
  return (
    <div className="account">
      {session.status === 'signed_in' ? (
        <span>Signed in as {session.user.email ?? session.user.name ?? session.user.sub} — {hostOf(server.url)}</span>
      ) : (
        <span className="muted">{session.status === 'signing_in' ? 'Signing in…' : 'Signed out'} — {hostOf(server.url)}</span>
      )}
      {session.status === 'signed_in' && (
        <span className={`server-status server-${server.status}`}>{server.status === 'online' ? 'Online' : server.status === 'connecting' ? 'Connecting…' : 'Offline'}</span>
      )}
    </div>
  );
}

function Connected({ client, state, toast, alert, toasts, dismissToast, toastRegion, desktopOffer, answerDesktopOffer }: {
  client: AgentClient; state: AgentState; toast: AppContext['toast']; alert: AppContext['alert'];
  toasts: Toast[]; dismissToast: (key: number) => void;
  toastRegion: RefObject<HTMLDivElement | null>; desktopOffer: boolean; answerDesktopOffer: (allow: boolean) => void;
}) {
  const signedIn = state.session.status === 'signed_in';
  const route = useMemo(() => routeFrom(window.location.search, VIEWS.map((v) => v.view)), []);
  const [view, setView] = useState<View>(route.view ?? (signedIn ? 'resources' : 'signin'));
  const [dialog, setDialog] = useState<DialogSpec | undefined>(route.dialog);
  const [settings, setSettings] = useState<AgentSettings>();
  const focusView = useRef(false);

  // Signing in or out moves to the section that makes sense now; other sections stay where the user put them.
  const wasSignedIn = useRef(signedIn);
  useEffect(() => {
    if (wasSignedIn.current === signedIn) return;
    wasSignedIn.current = signedIn;
    setView(signedIn ? (state.grants.some((g) => isLive(g)) ? 'active' : 'resources') : 'signin');
    if (!signedIn) setDialog(undefined);
  }, [signedIn, state.grants]);

  useEffect(() => {
    client.call('getSettings', {}).then(setSettings).catch(() => { /* Settings shows its own error when opened. */ });
  }, [client]);

  useEffect(() => {
    if (!focusView.current) return;
    focusView.current = false;
    document.getElementById('view-title')?.focus();
  }, [view]);

  const go = useCallback((next: View) => {
    focusView.current = true;
    setView(next);
  }, []);
  const run = useCallback(async <M extends AgentMethod>(method: M, input: AgentInput<M>) => {
    try {
      return await client.call(method, input);
    } catch (e) {
      alert(errorMessage(e));
      return undefined;
    }
  }, [client, alert]);

  const ctx: AppContext = {
    client, state, settings, setSettings, go, toast, alert, run,
    open: setDialog,
    close: () => setDialog(undefined),
  };

  const admin = state.session.status === 'signed_in' && state.session.user.admin;
  const visible = VIEWS.filter((v) => (signedIn ? v.view !== 'signin' : !v.signedIn) && (!v.admin || admin));
  const current = visible.some((v) => v.view === view) ? view : visible[0]!.view;
  const counts: Partial<Record<View, number>> = {
    active: state.grants.filter((g) => isLive(g)).length,
    waiting: state.requests.filter((r) => r.state === 'pending_stepup' || r.state === 'pending_approval').length,
    approvals: state.approvals.length,
  };

  return (
    <AppContextValue.Provider value={ctx}>
      {signedIn && state.server.status === 'offline' && (
        <p className="banner" role="status">
          The server can’t be reached — your active access still ends on time.{state.server.message ? ` ${state.server.message}` : ''}
        </p>
      )}
      {desktopOffer && <DesktopOffer answer={answerDesktopOffer} />}
      <div className="layout">
        <nav className="sections" aria-label="Sections">
          <ul>
            {visible.map((v) => (
              <li key={v.view}>
                <button type="button" className="nav-item" aria-current={current === v.view ? 'page' : undefined} onClick={() => go(v.view)}>
                  <span>{v.label}</span>
                  {counts[v.view] ? <span className="count" aria-label={`(${counts[v.view]})`}>{counts[v.view]}</span> : null}
                </button>
              </li>
            ))}
          </ul>
          {signedIn && (
            <button type="button" className="link-button signout" onClick={() => run('signOut', {})}>Sign out</button>
          )}
        </nav>
        <main className="content" id="content" tabIndex={-1}>
          {current === 'signin' && <SignIn />}
          {current === 'resources' && <Resources />}
          {current === 'waiting' && <Waiting />}
          {current === 'active' && <Active />}
          {current === 'approvals' && <Approvals />}
          {current === 'history' && <History />}
          {current === 'admin' && <Admin />}
          {current === 'settings' && <Settings />}
        </main>
      </div>
      {signedIn && dialog && <DialogFor spec={dialog} ctx={ctx} />}
      <Toasts toasts={toasts} dismiss={dismissToast} ctx={ctx} region={toastRegion} />
    </AppContextValue.Provider>
  );
}

function DialogFor({ spec, ctx }: { spec: DialogSpec; ctx: AppContext }) {
  const { state, client, close, toast, go } = ctx;
  switch (spec.kind) {
    case 'request': {
      const resource = state.resources.find((r) => r.id === spec.resourceId);
      return resource ? <RequestForm key={resource.id} resource={resource} /> : <Gone what="That database isn’t available to you." close={close} />;
    }
    case 'extend':
    case 'release': {
      const local = state.grants.find((g) => g.grant.id === spec.grantId && isLive(g));
      if (!local) return <Gone what="That access has already ended." close={close} />;
      return spec.kind === 'extend' ? <ExtendDialog local={local} /> : <ReleaseDialog local={local} />;
    }
    case 'approve':
    case 'deny': {
      const request = state.approvals.find((r) => r.id === spec.requestId);
      if (!request) return <Gone what="That request is no longer waiting for you." close={close} />;
      return spec.kind === 'approve' ? <ApproveDialog request={request} /> : <DenyDialog request={request} />;
    }
    case 'stepup': {
      // A resume's step-up (from the Active view, or from the tray's Resume) is for a grant still live. Not "still left
      // from before": the agent publishes the grant resumed before the call answers, and the dialog must last until then.
      const resumed = spec.action === 'resume' ? state.grants.find((g) => g.grant.id === spec.grantId && isLive(g)) : undefined;
      if (spec.action === 'resume' && !resumed) return <Gone what="That access has already ended." close={close} />;
      const title = spec.summary ?? (resumed ? resumeSummary(resumed) : describeRequest(state, spec.requestId));
      const submit = (proof: StepUpProof) => (spec.action === 'resume'
        ? client.call('resumeGrant', { grantId: spec.grantId ?? '', stepUp: proof })
        : spec.action === 'request'
          ? client.call('submitStepUp', { requestId: spec.requestId, proof })
          : client.call('approve', { requestId: spec.requestId, stepUp: proof, ...(spec.comment ? { comment: spec.comment } : {}) }));
      const onDone = (result: unknown) => {
        close();
        if (spec.action === 'resume') {
          const port = (result as { port?: number }).port;
          toast({ title: 'Resumed', body: `New keys, same end${port ? ` — connected on 127.0.0.1:${port}` : ''}.`, tone: 'ok' });
          go('active');
        } else if (spec.action === 'request') {
          const approved = (result as { request?: { state?: string } }).request?.state === 'approved';
          toast({ title: 'Verified', body: approved ? 'Your access is being set up.' : 'Your request is now waiting for approval.', tone: 'ok' });
          go(approved ? 'active' : 'waiting');
        } else {
          toast({ title: 'Approved', body: title, tone: 'ok' });
        }
      };
      return (
        <StepUpSlot client={client} action={{ kind: spec.action === 'resume' ? 'request' : spec.action, requestId: spec.requestId }}
          summary={{ title }} submit={submit} onDone={onDone} onCancel={close}
          onEnroll={() => { close(); go('settings'); }} />
      );
    }
  }
}

/** "Request write access to prod-orders for 1h", for a step-up opened from the tray or a deep link. */
function describeRequest(state: AgentState, requestId: string): string {
  const r = [...state.requests, ...state.approvals].find((x) => x.id === requestId);
  if (!r) return 'Confirm this request';
  return `Request ${r.level} access to ${resourceLabel(state.resources, r.resourceId)} for ${formatDuration(r.durationSeconds)}`;
}

function Gone({ what, close }: { what: string; close: () => void }) {
  return (
    <div className="banner" role="status">
      {what} <button type="button" className="link-button" onClick={close}>Dismiss</button>
    </div>
  );
}

function Alerts({ alerts, dismiss }: { alerts: Alert[]; dismiss: (key: number) => void }) {
  if (alerts.length === 0) return null;
  return (
    <div className="alerts">
      {alerts.map((a) => (
        <div key={a.key} className="alert" role="alert">
          <span>{a.message}</span>
          <button type="button" className="link-button" aria-label={`Dismiss: ${a.message}`} onClick={() => dismiss(a.key)}>Dismiss</button>
        </div>
      ))}
    </div>
  );
}

/** A notification button's words; the client's name from the resource's kind ("Open in psql", "Open in mariadb"). */
function actionLabel(action: NotificationAction, n: AgentNotification): string {
  const { client } = kindWords(n.resourceKind);
  const words: Record<NotificationAction, string> = {
    approve: 'Approve…',
    deny: 'Deny…',
    open_psql: `Open in ${client}`,
    copy_uri: `Copy ${client} command`,
    extend: 'Extend…',
    open: 'Show',
  };
  return words[action];
}

/**
 * "Copy" from a notification: the psql command (no secret in it) through the browser's clipboard, which every host
 * has; where there is none or the browser refuses, the Active card shows the command to copy by hand.
 */
async function copyPsqlCommand(grantId: string, ctx: AppContext): Promise<void> {
  const local = ctx.state.grants.find((g) => g.grant.id === grantId);
  const command = local?.tunnel?.command;
  if (local && command && (await copyText(command))) ctx.toast({ title: `${kindWords(local.grant.kind).client} command copied`, body: 'Paste it into a terminal on this computer. It holds no password.', tone: 'ok' });
  else ctx.go('active');
}

/** Notification actions do what the native notification's buttons do; approving still goes through its dialog. */
function act(action: NotificationAction, n: AgentNotification, ctx: AppContext): void {
  const { grantId, requestId } = n;
  if ((action === 'approve' || action === 'deny') && requestId) {
    ctx.go('approvals');
    ctx.open({ kind: action, requestId });
  } else if (action === 'open_psql' && grantId) void ctx.run('openPsql', { grantId });
  else if (action === 'copy_uri' && grantId) void copyPsqlCommand(grantId, ctx);
  else if (action === 'extend' && grantId) ctx.open({ kind: 'extend', grantId });
  else if (action === 'open') ctx.go(n.kind === 'approval_asked' || n.kind === 'breakglass' ? 'approvals' : n.kind === 'security' ? 'settings' : grantId ? 'active' : 'waiting');
}

/**
 * In the web host, once there is something worth hearing about: the browser's own notifications, if the user wants.
 * A bar above the sections rather than a toast: it waits for an answer and must not cover what the user works on.
 */
function DesktopOffer({ answer }: { answer: (allow: boolean) => void }) {
  return (
    <section className="desktop-offer" aria-labelledby="desktop-offer-title">
      <p><strong id="desktop-offer-title">Get desktop notifications?</strong>{' '}
        <span className="muted">Stint can tell you when access is approved, asked of you, or about to end while this tab is in the background.</span></p>
      <div className="desktop-offer-actions">
        <button type="button" className="primary" onClick={() => answer(true)}>Turn on</button>
        <button type="button" className="link-button" onClick={() => answer(false)}>Not now</button>
      </div>
    </section>
  );
}

function Toasts({ toasts, dismiss, ctx, region }: { toasts: Toast[]; dismiss: (key: number) => void; ctx: AppContext; region: RefObject<HTMLDivElement | null> }) {
  return (
    <div className="toasts" role="status" aria-live="polite" ref={region}>
      {toasts.map((t) => {
        const n = t.notification;
        return (
          <div key={t.key} className={`toast toast-${t.tone ?? n?.kind ?? 'info'}`}>
            <p className="toast-title">{t.title}</p>
            {t.body && <p className="toast-body">{t.body}</p>}
            <div className="toast-actions">
              {n?.actions.map((a) => (
                <button key={a} type="button" className="link-button" onClick={() => { act(a, n, ctx); dismiss(t.key); }}>
                  {actionLabel(a, n)}
                </button>
              ))}
              <button type="button" className="link-button" aria-label={`Dismiss: ${t.title}`} onClick={() => dismiss(t.key)}>Dismiss</button>
            </div>
          </div>
        );
      })}
    </div>
  );
}
