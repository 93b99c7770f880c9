// The approve page (served by the grant server at /approve/<request id>, signed in at the IdP by then): who asks for
// what and why, the ticket, the risk and the approvals so far; Approve (with the step-up the server asks for — a
// passkey registered at this server, or a code — through the same StepUpView as the app) or Deny with a reason.
// A user who may not decide is told why, in words.
import { useCallback, useEffect, useMemo, useState, type FormEvent } from 'react';
import type { AgentProblem } from '../../shared/contract/problem';
import type { PageRequestView, PageSession } from '../../shared/contract/approve-page';
import { formatWhen } from '../src/format';
import { problemWords } from '../src/problem-words';
import { EnrollView } from '../src/stepup/EnrollView';
import { StepUpView } from '../src/stepup/StepUpView';
import type { ApprovePageApi } from './api';

type Load =
  | { phase: 'loading' }
  | { phase: 'signed_out' }
  | { phase: 'refused'; problem: AgentProblem }
  | { phase: 'ready'; view: PageRequestView };

type Mode = 'idle' | 'stepup' | 'enroll' | 'deny' | 'working';

const minutes = (seconds: number) => (seconds % 3600 === 0 ? `${seconds / 3600} h` : `${Math.round(seconds / 60)} min`);

export function ApprovePage({ api, requestId }: { api: ApprovePageApi; requestId: string }) {
  const [session, setSession] = useState<PageSession | undefined>();
  const [load, setLoad] = useState<Load>({ phase: 'loading' });
  const [mode, setMode] = useState<Mode>('idle');
  const [problem, setProblem] = useState<AgentProblem | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [reason, setReason] = useState('');
  const stepUpClient = useMemo(() => api.stepUp(requestId), [api, requestId]);

  const refresh = useCallback(async () => {
    const s = await api.session();
    if (!s.ok) {
      setLoad(s.problem.code === 'page_session_required' ? { phase: 'signed_out' } : { phase: 'refused', problem: s.problem });
      return;
    }
    setSession(s.value);
    const v = await api.view(requestId);
    setLoad(v.ok ? { phase: 'ready', view: v.value } : { phase: 'refused', problem: v.problem });
  }, [api, requestId]);

  useEffect(() => { void refresh(); }, [refresh]);

  const decided = useCallback(async (text: string) => {
    setMode('idle');
    setProblem(undefined);
    setNotice(text);
    await refresh();
  }, [refresh]);

  const approve = useCallback(async () => {
    setProblem(undefined); setNotice(undefined); setMode('working');
    const r = await api.approve(requestId);
    if (r.ok) return decided(r.value.request.state === 'approved' ? 'Approved. The requester can connect now.' : 'Your approval is recorded; more approvals are needed.');
    // The server decides whether approving needs a step-up (policy and the request's risk): then the page asks for it.
    if (r.problem.code === 'stepup_required') { setMode('stepup'); return; }
    setProblem(r.problem);
    setMode('idle');
  }, [api, requestId, decided]);

  const deny = useCallback(async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined); setNotice(undefined); setMode('working');
    const r = await api.deny(requestId, reason.trim());
    if (r.ok) return decided('Denied. The requester is told, with your reason.');
    setProblem(r.problem);
    setMode('deny');
  }, [api, requestId, reason, decided]);

  const signOut = useCallback(async () => {
    await api.signOut();
    setSession(undefined);
    setLoad({ phase: 'signed_out' });
  }, [api]);

  return (
    <div className="app">
      <header className="topbar">
        <h1>Stint — approve access</h1>
        {session && (
          <span className="muted" data-testid="approve-who">
            Signed in as {session.user.name ?? session.user.sub} <button type="button" onClick={() => void signOut()}>Sign out</button>
          </span>
        )}
      </header>
      <main className="content">
        {load.phase === 'loading' && <p className="muted">Loading the request…</p>}
        {load.phase === 'signed_out' && (
          <p role="alert" data-testid="approve-signed-out">You are signed out of this page. <a href={window.location.pathname}>Sign in again</a> to decide this request.</p>
        )}
        {load.phase === 'refused' && (
          <div role="alert" className="error" data-testid="approve-refused" data-code={load.problem.code}>
            <h2>You can’t decide this request</h2>
            <p>{load.problem.code === 'request_not_found'
              ? `There is no request “${requestId}” that ${session?.user.name ?? 'you'} may see: it does not exist, or you are not in one of the groups that approve it.`
              : problemWords(load.problem)}</p>
          </div>
        )}
        {load.phase === 'ready' && (
          <RequestDetails view={load.view} />
        )}
        {notice && <p role="status" className="notice" data-testid="approve-notice">{notice}</p>}
        {problem && <p role="alert" className="error" data-testid="approve-error" data-code={problem.code}>{problemWords(problem)}</p>}
        {load.phase === 'ready' && mode !== 'stepup' && mode !== 'enroll' && (
          <Decision view={load.view} mode={mode} reason={reason} setReason={setReason} onApprove={() => void approve()} onDeny={deny} onStartDeny={() => setMode('deny')} onCancel={() => setMode('idle')} />
        )}
        {load.phase === 'ready' && mode === 'stepup' && (
          <StepUpView
            api={stepUpClient}
            action={{ kind: 'approve', requestId }}
            summary={{ title: `Approve ${load.view.request.requesterName ?? load.view.request.requester}’s request`, details: [['Resource', load.view.resource?.name ?? load.view.request.resourceId], ['Access', load.view.request.level]] }}
            onDone={(result) => void decided((result as { request?: { state?: string } }).request?.state === 'approved' ? 'Approved. The requester can connect now.' : 'Your approval is recorded; more approvals are needed.')}
            onCancel={() => setMode('idle')}
            onEnroll={() => setMode('enroll')}
          />
        )}
        {mode === 'enroll' && (
          <section data-testid="approve-enroll">
            <h2>Add a passkey or code for this server</h2>
            <p className="muted">Passkeys work on the address they were added at: one added here works on this page from now on.</p>
            <EnrollView api={stepUpClient} />
            <button type="button" className="primary" onClick={() => setMode('stepup')}>Back to approving</button>
          </section>
        )}
      </main>
    </div>
  );
}

function RequestDetails({ view }: { view: PageRequestView }) {
  const r = view.request;
  const who = r.requesterName ?? r.requester;
  const rows: [string, string][] = [
    ['Requester', r.requesterName ? `${r.requesterName} (${r.requester})` : r.requester],
    ['Resource', view.resource ? `${view.resource.name} — ${view.resource.environment}, ${view.resource.sensitivity} sensitivity` : r.resourceId],
    ['Access', r.level],
    ['For', minutes(r.durationSeconds)],
    ['Reason', r.reason || '(none given)'],
    ...(r.ticket ? [['Ticket', r.ticket] as [string, string]] : []),
    ...(r.breakGlass ? [['Break-glass', 'yes — used in an emergency'] as [string, string]] : []),
    ['State', r.state.replace('_', ' ')],
    [r.state.startsWith('pending') ? 'Expires' : 'Decided', formatWhen(r.state.startsWith('pending') ? r.expiresAt : r.decidedAt ?? r.expiresAt)],
  ];
  return (
    <section className="card" data-testid="approve-request" aria-labelledby="approve-title">
      <h2 id="approve-title">{who} asks for {r.level} access to {view.resource?.name ?? r.resourceId}</h2>
      <dl className="approve-facts">{rows.map(([k, v]) => (<div key={k}><dt>{k}</dt><dd>{v}</dd></div>))}</dl>
      <h3>Risk: {r.risk.score} / 100</h3>
      {r.risk.reasons.length > 0 ? <ul data-testid="approve-risk">{r.risk.reasons.map((reason) => <li key={reason}>{reason}</li>)}</ul> : <p className="muted">No risk signals.</p>}
      <h3>Approvals</h3>
      <ul data-testid="approve-approvals">
        {r.approvalsNeeded.map((need) => (
          <li key={need.group}>{need.group}: {need.have} of {need.count}{need.have >= need.count ? ' ✓' : ''}</li>
        ))}
        {r.approvals.map((a) => (
          <li key={a.approver}>Approved by {a.approverName ?? a.approver} ({a.group}), {formatWhen(a.at)}</li>
        ))}
      </ul>
    </section>
  );
}

interface DecisionProps {
  view: PageRequestView;
  mode: Mode;
  reason: string;
  setReason: (reason: string) => void;
  onApprove: () => void;
  onDeny: (event: FormEvent) => void;
  onStartDeny: () => void;
  onCancel: () => void;
}

function Decision({ view, mode, reason, setReason, onApprove, onDeny, onStartDeny, onCancel }: DecisionProps) {
  const { approve, deny } = view;
  if (view.request.state !== 'pending_approval') {
    return <p className="muted" data-testid="approve-settled">Nothing left to decide: the request is {view.request.state.replace('_', ' ')}.</p>;
  }
  if (!approve.allowed && !deny.allowed) {
    return approve.refusal ? <p className="muted" data-testid="approve-cannot" data-code={approve.refusal.code}>{problemWords({ code: approve.refusal.code, detail: approve.refusal.message })}</p> : null;
  }
  return (
    <section data-testid="approve-decision">
      {!approve.allowed && approve.refusal && <p className="muted" data-testid="approve-cannot" data-code={approve.refusal.code}>{problemWords({ code: approve.refusal.code, detail: approve.refusal.message })}</p>}
      {mode === 'deny' ? (
        <form onSubmit={onDeny}>
          <label htmlFor="deny-reason">Why do you deny it? The requester sees this.</label>
          <input id="deny-reason" value={reason} maxLength={2000} onChange={(e) => setReason(e.target.value)} />
          <button type="submit" disabled={!reason.trim()}>Deny</button>
          <button type="button" onClick={onCancel}>Cancel</button>
        </form>
      ) : (
        <p>
          {approve.allowed && <button type="button" className="primary" disabled={mode === 'working'} onClick={onApprove}>Approve</button>}{' '}
          {deny.allowed && <button type="button" disabled={mode === 'working'} onClick={onStartDeny}>Deny…</button>}
        </p>
      )}
    </section>
  );
}
