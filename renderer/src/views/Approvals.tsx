import type { AccessRequest } from '../../../shared/contract/http';
import { useApp } from '../context';
import { formatDuration, formatWhen } from '../format';
import { approvalProgress, resourceLabel } from '../policy';
import { Reviews } from './Reviews';
import { approvalStepUpWords } from '../../../shared/domain/approvals';

export function riskWord(score: number): string {
  return score >= 70 ? 'high' : score >= 40 ? 'medium' : 'low';
}

export function requesterName(r: AccessRequest): string {
  return r.requesterName ?? r.requester;
}

export function Approvals() {
  const { state, open } = useApp();
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Approvals</h2>
      {state.approvals.length === 0 && <p className="muted">Nobody is waiting for you.</p>}
      <ul className="cards">
        {state.approvals.map((r) => {
          const name = resourceLabel(state.resources, r.resourceId);
          const who = requesterName(r);
          return (
            <li key={r.id} className="card approval" aria-labelledby={`approval-${r.id}`}>
              <h3 id={`approval-${r.id}`} className="card-title">{who} → {name} · {r.level} · {formatDuration(r.durationSeconds)}</h3>
              <p className="quote">{r.reason ? `“${r.reason}”` : <span className="muted">No reason given</span>}</p>
              <dl className="facts">
                {r.ticket && (<><dt>Ticket</dt><dd>{r.ticket}</dd></>)}
                <dt>Risk</dt>
                <dd>
                  <span className={`badge risk-${riskWord(r.risk.score)}`}>{riskWord(r.risk.score)} · {r.risk.score}/100</span>
                  {r.risk.reasons.length > 0 && (
                    <ul className="risk-reasons" aria-label="Why">
                      {r.risk.reasons.map((reason) => <li key={reason}>{reason}</li>)}
                    </ul>
                  )}
                </dd>
                {r.breakGlass && (<><dt>Break glass</dt><dd>Yes — access was given at once; review it</dd></>)}
                <dt>Approvals</dt><dd>{approvalProgress(r) || 'none needed'}</dd>
                {approvalStepUpWords(r) && (<><dt>Step-up</dt><dd data-testid={`approval-stepup-${r.id}`}>{approvalStepUpWords(r)}</dd></>)}
                <dt>Asked</dt><dd>{formatWhen(r.createdAt)}</dd>
              </dl>
              <div className="actions">
                <button type="button" className="primary" id={`approve-${r.id}`} aria-label={`Approve ${who}’s request for ${name}`}
                  onClick={() => open({ kind: 'approve', requestId: r.id })}>Approve…</button>
                <button type="button" id={`deny-${r.id}`} aria-label={`Deny ${who}’s request for ${name}`}
                  onClick={() => open({ kind: 'deny', requestId: r.id })}>Deny…</button>
              </div>
            </li>
          );
        })}
      </ul>
      <Reviews />
    </section>
  );
}
