import { useEffect, useState } from 'react';
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

type Trail = { status: 'loading' } | { status: 'audit'; rows: Row[] } | { status: 'state' } | { status: 'failed'; message: string };

/** "request.approved" → "Request approved". */
function actionWords(action: string): string {
  const words = action.replace(/[._]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** My audit trail from the server when the agent offers it; otherwise my recent requests and access from the state. */
export function History() {
  const { client, state } = useApp();
  const [trail, setTrail] = useState<Trail>({ status: 'loading' });

  useEffect(() => {
    let live = true;
    client.call('history', { limit: 200 })
      .then(({ entries }) => {
        if (!live) return;
        setTrail({
          status: 'audit',
          rows: entries.map((e) => ({
            key: `a-${e.seq}`, at: e.at, what: e.resourceId ? resourceLabel(state.resources, e.resourceId) : '',
            outcome: `${actionWords(e.action)}${e.actor && e.subject && e.actor !== e.subject ? ` by ${e.actor}` : ''}`, reason: e.reason ?? '',
          })).reverse(),
        });
      })
      .catch((error: unknown) => {
        if (!live) return;
        setTrail(errorCode(error) === 'unknown_method' ? { status: 'state' } : { status: 'failed', message: errorMessage(error) });
      });
    return () => { live = false; };
    // Loaded once per visit to History; the state-based list below follows the state live.
  }, [client]);

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
          <caption className="muted">{trail.status === 'audit' ? 'Your audit trail' : 'Your recent requests and access'}</caption>
          <thead><tr><th scope="col">When</th><th scope="col">Access</th><th scope="col">What happened</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.key}><td>{formatWhen(row.at)}</td><td>{row.what}</td><td>{row.outcome}</td><td>{row.reason}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
