import type { AccessRequest } from '../../../shared/contract/http';
import { useApp } from '../context';
import { formatDuration, formatWhen } from '../format';
import { approvalProgress, approverText, resourceLabel } from '../policy';

/** Who has been asked, and what happens next if nobody decides (policy reminders and escalation). */
function AskedLine({ asked }: { asked: NonNullable<AccessRequest['asked']> }) {
  const parts = [`Asked: ${asked.groups.join(', ')}`];
  if (asked.remindersSent > 0) parts.push(`reminded ${asked.remindersSent === 1 ? 'once' : `${asked.remindersSent} times`}`);
  if (asked.nextReminderAt) parts.push(`next reminder ${formatWhen(asked.nextReminderAt)}`);
  if (asked.escalation) parts.push(asked.escalation.reached ? `escalated to ${asked.escalation.group} ${formatWhen(asked.escalation.at)}` : `${asked.escalation.group} too from ${formatWhen(asked.escalation.at)}`);
  return <p className="muted" data-testid="waiting-asked">{parts.join(' · ')}</p>;
}

export function Waiting() {
  const { state, run, open, toast } = useApp();
  const pending = state.requests.filter((r) => r.state === 'pending_stepup' || r.state === 'pending_approval');
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Waiting</h2>
      {pending.length === 0 && <p className="muted">Nothing is waiting. Requests that need approval show here until someone decides.</p>}
      <ul className="cards">
        {pending.map((r) => {
          const name = resourceLabel(state.resources, r.resourceId);
          const missing = r.approvalsNeeded.filter((a) => a.have < a.count);
          return (
            <li key={r.id} className="card" aria-labelledby={`waiting-${r.id}`}>
              <h3 id={`waiting-${r.id}`} className="card-title">{name} · {r.level} · {formatDuration(r.durationSeconds)}</h3>
              {r.state === 'pending_stepup' ? (
                <p className="status-line">Waiting for you to verify it’s you.</p>
              ) : (
                <p className="status-line">
                  {approvalProgress(r)}{missing.length > 0 && <> — waiting for {approverText(missing.map((m) => ({ group: m.group, count: m.count - m.have })))}</>}
                </p>
              )}
              {r.state === 'pending_approval' && r.asked && <AskedLine asked={r.asked} />}
              {r.reason && <p className="quote">“{r.reason}”</p>}
              <p className="muted">Asked at {formatWhen(r.createdAt)}{r.ticket ? ` · ${r.ticket}` : ''}</p>
              <div className="actions">
                {r.state === 'pending_stepup' && (
                  <button type="button" className="primary" id={`verify-${r.id}`}
                    onClick={() => open({ kind: 'stepup', action: 'request', requestId: r.id, summary: `Request ${r.level} access to ${name} for ${formatDuration(r.durationSeconds)}` })}>
                    Verify…
                  </button>
                )}
                <button type="button" aria-label={`Cancel request for ${name}`}
                  onClick={async () => {
                    if (await run('cancelRequest', { requestId: r.id })) toast({ title: `Cancelled your request for ${name}`, tone: 'info' });
                  }}>
                  Cancel request
                </button>
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
