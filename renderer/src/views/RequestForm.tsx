// The request window: duration presets within policy, a reason (focused), the ticket when policy asks, the level,
// and one primary button whose label says what will happen. Enter in any text field submits.
import { useState, type FormEvent } from 'react';
import type { Resource } from '../../../shared/contract/http';
import { useApp } from '../context';
import { Dialog } from '../ui/Dialog';
import { ChoiceButtons, Field } from '../ui/Field';
import { formatDuration } from '../format';
import { approverText, durationChoices, needsApproval, primaryActionLabel, ticketProblem } from '../policy';
import { errorMessage } from '../useAgent';
import { environmentTitle } from './Resources';

export function RequestForm({ resource }: { resource: Resource }) {
  const { client, settings, close, go, open, toast } = useApp();
  const policy = resource.policy;
  const { choices, initial } = durationChoices(policy, settings?.defaultDurationSeconds);
  const [durationSeconds, setDuration] = useState(initial);
  const [level, setLevel] = useState(resource.levels[0]!);
  const [reason, setReason] = useState('');
  const [ticket, setTicket] = useState('');
  const [breakGlass, setBreakGlass] = useState(false);
  const [errors, setErrors] = useState<{ reason?: string; ticket?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);
  const askTicket = Boolean(policy.ticketPattern) || policy.ticketRequired;
  const reasonRequired = policy.reasonRequired || breakGlass;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    const found = {
      reason: reasonRequired && !reason.trim() ? 'Say why you need access — approvers and the audit trail see it.' : undefined,
      ticket: askTicket ? ticketProblem(policy, ticket) : undefined,
    };
    setErrors(found);
    if (found.reason || found.ticket) {
      document.getElementById(found.reason ? 'request-reason' : 'request-ticket')?.focus();
      return;
    }
    setBusy(true);
    try {
      const result = await client.call('createRequest', {
        resourceId: resource.id, level, durationSeconds, reason: reason.trim(),
        ...(ticket.trim() ? { ticket: ticket.trim() } : {}),
        breakGlass, connect: true,
      });
      const { request, connection } = result;
      if (request.state === 'denied') {
        setErrors({ form: `Not allowed: ${request.decisionReason ?? 'the policy refused this request.'}` });
        return;
      }
      close();
      if (request.state === 'pending_stepup') {
        open({ kind: 'stepup', action: 'request', requestId: request.id, summary: `Request ${level} access to ${resource.name} for ${formatDuration(durationSeconds)}` });
      } else if (request.state === 'pending_approval') {
        toast({ title: `Asked ${approverText(request.approvalsNeeded.length ? request.approvalsNeeded : policy.approvals)}`, body: `You’ll be told when they decide on ${resource.name}.`, tone: 'info' });
        go('waiting');
      } else {
        toast({
          title: `${resource.name} is ready`,
          body: connection ? `${connection.host}:${connection.port}, ${formatDuration(request.durationSeconds)}${connection.message ? ` — ${connection.message}` : ''}` : undefined,
          tone: 'ok',
        });
        go('active');
      }
    } catch (e) {
      setErrors({ form: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  const description = (
    <p className="muted">
      {environmentTitle(resource.environment)} · {resource.sensitivity} sensitivity
      {needsApproval(policy) && !breakGlass ? ` · needs approval from ${approverText(policy.approvals)}` : ''}
    </p>
  );

  return (
    <Dialog title={`Request access to ${resource.name}`} description={description} onClose={close} className="request-dialog">
      <form noValidate onSubmit={submit} aria-label={`Request access to ${resource.name}`}>
        <Field id="request-reason" label={reasonRequired ? 'Reason (required)' : 'Reason'} error={errors.reason}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-autofocus
              type="text"
              value={reason}
              maxLength={2000}
              autoComplete="off"
              required={reasonRequired}
              aria-required={reasonRequired}
              aria-invalid={invalid}
              aria-describedby={describedBy}
              placeholder="e.g. INC-4512 fix stuck orders"
              onChange={(e) => setReason(e.target.value)}
            />
          )}
        </Field>
        {askTicket && (
          <Field id="request-ticket" label={policy.ticketRequired ? 'Ticket (required)' : 'Ticket'} error={errors.ticket}>
            {({ id, describedBy, invalid }) => (
              <input
                id={id}
                type="text"
                value={ticket}
                maxLength={128}
                autoComplete="off"
                required={policy.ticketRequired}
                aria-required={policy.ticketRequired}
                aria-invalid={invalid}
                aria-describedby={describedBy}
                onChange={(e) => setTicket(e.target.value)}
              />
            )}
          </Field>
        )}
        <ChoiceButtons
          legend={`How long (up to ${formatDuration(policy.durationMaxSeconds)})`}
          name="duration"
          choices={choices.map((c) => ({ value: c.seconds, label: c.label }))}
          value={durationSeconds}
          onChange={setDuration}
        />
        {resource.levels.length > 1 ? (
          <div className="field">
            <label htmlFor="request-level">Access level</label>
            <select id="request-level" value={level} onChange={(e) => setLevel(e.target.value)}>
              {resource.levels.map((l) => <option key={l} value={l}>{l}</option>)}
            </select>
          </div>
        ) : (
          <p className="field">Access level: <strong>{level}</strong></p>
        )}
        {policy.breakGlass && (
          <div className="field checkbox">
            <input id="request-breakglass" type="checkbox" checked={breakGlass} onChange={(e) => setBreakGlass(e.target.checked)} />
            <label htmlFor="request-breakglass">Emergency (break glass): skip approval — security is alerted at once</label>
          </div>
        )}
        {errors.form && <p role="alert" className="error">{errors.form}</p>}
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>{primaryActionLabel(policy, breakGlass)}</button>
          <button type="button" onClick={close}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}
