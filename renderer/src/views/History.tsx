import { useEffect, useState } from 'react';
import type { AuditEntry } from '../../../shared/contract/http';
import { useApp } from '../context';
import { formatDuration, formatWhen } from '../format';
import { isLive, resourceLabel } from '../policy';
import { errorCode, errorMessage } from '../useAgent';
import { endedText } from './Active';


const REQUEST_WORDS: Record<string, string> = {
  pending_stepup: 'Waiting for you to verify',
  pending_approval: 'Waiting for approval',
  approved: 'Approved',
  denied: 'Denied',
  expired: 'Expired',
  cancelled: 'Cancelled',
};

interface Row { key: string; at: string; what: string; outcome: string; reason: string }

/** `older`: the seq to page on from (the last row shown), when there may be more. */
type Trail = { status: 'loading' } | { status: 'audit'; rows: Row[]; older?: number } | { status: 'state' } | { status: 'failed'; message: string };

const PAGE = 100;

/** "request.approved" → "Request approved". */
function actionWords(action: string): string {
  const words = action.replace(/[._]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** My audit trail from the server when the agent offers it; otherwise my recent requests and access from the state. */
export function History() {
  const { client, state, alert } = useApp();
  // An administrator's trail is everyone's (GET /v1/audit): saying "Your" misread it as theirs alone.
  const admin = state.session.status === 'signed_in' && state.session.user.admin;
  const [trail, setTrail] = useState<Trail>({ status: 'loading' });

  const [loadingOlder, setLoadingOlder] = useState(false);
  const toRow = (e: AuditEntry): Row => ({
    key: `a-${e.seq}`, at: e.at, what: e.resourceId ? resourceLabel(state.resources, e.resourceId) : '',
    outcome: `${actionWords(e.action)}${e.actor && e.subject && e.actor !== e.subject ? ` by ${e.actor}` : ''}`, reason: e.reason ?? '',
  });
  const page = (entries: AuditEntry[]) => (entries.length === PAGE ? { older: entries.at(-1)!.seq } : {});

  useEffect(() => {
    let live = true;
    // Newest first; "Show older" pages on by the last seq shown (keyset: as fast on the hundredth page as the first).
    client.call('history', { limit: PAGE })
      .then(({ entries }) => {
        if (live) setTrail({ status: 'audit', rows: entries.map(toRow), ...page(entries) });
      })
      .catch((error: unknown) => {
        if (!live) return;
        setTrail(errorCode(error) === 'unknown_method' ? { status: 'state' } : { status: 'failed', message: errorMessage(error) });
      });
    return () => { live = false; };
    // Loaded once per visit to History; the state-based list below follows the state live.
  }, [client]);

  const showOlder = async () => {
    if (trail.status !== 'audit' || trail.older === undefined) return;
    setLoadingOlder(true);
    try {
      const { entries } = await client.call('history', { before: trail.older, limit: PAGE });
      setTrail({ status: 'audit', rows: [...trail.rows, ...entries.map(toRow)], ...page(entries) });
    } catch (error) {
      alert(errorMessage(error));
    } finally {
      setLoadingOlder(false);
    }
  };

  const recent: Row[] = [
    ...state.requests.map((r) => ({
      key: `r-${r.id}`, at: r.decidedAt ?? r.createdAt,
      what: `${resourceLabel(state.resources, r.resourceId)} · ${r.level} · ${formatDuration(r.durationSeconds)}`,
      outcome: `${REQUEST_WORDS[r.state] ?? r.state}${r.decisionReason ? `: ${r.decisionReason}` : ''}`,
      reason: r.reason,
    })),
    ...state.grants.filter((g) => !isLive(g)).map((g) => ({
      key: `g-${g.grant.id}`, at: g.grant.endedAt ?? g.grant.endsAt,
      what: `${g.resourceName ?? g.grant.resourceId} · ${g.grant.level}`,
      outcome: `${endedText(g)} — credentials wiped`,
      reason: '',
    })),
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));

  const rows = trail.status === 'audit' ? trail.rows : recent;
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>History</h2>
      {trail.status === 'failed' && <p role="alert" className="error">Couldn’t load your full history: {trail.message} Showing recent activity instead.</p>}
      {trail.status === 'loading' && <p className="muted">Loading…</p>}
      {rows.length === 0 ? <p className="muted">No requests yet.</p> : (
        <table className="history">
          <caption className="muted">{trail.status !== 'audit' ? 'Your recent requests and access' : admin ? 'Everyone’s audit trail (you are an administrator)' : 'Your audit trail'}</caption>
          <thead><tr><th scope="col">When</th><th scope="col">Access</th><th scope="col">What happened</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.key}><td>{formatWhen(row.at)}</td><td>{row.what}</td><td>{row.outcome}</td><td>{row.reason}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {trail.status === 'audit' && trail.older !== undefined && (
        <div className="actions"><button type="button" onClick={showOlder} disabled={loadingOlder}>{loadingOlder ? 'Loading…' : 'Show older'}</button></div>
      )}
    </section>
  );
}
