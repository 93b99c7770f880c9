import { useState, type FormEvent } from 'react';
import type { AccessRequest } from '../../../shared/contract/http';
import { useApp } from '../context';
import { Dialog } from '../ui/Dialog';
import { Field } from '../ui/Field';
import { formatDuration } from '../format';
import { resourceLabel } from '../policy';
import { errorCode, errorMessage } from '../useAgent';
import { requesterName } from './Approvals';
import { approvalStepUpWords } from '../../../shared/domain/approvals';

function summaryOf(r: AccessRequest, resourceName: string): string {
  return `${requesterName(r)}’s ${r.level} access to ${resourceName} for ${formatDuration(r.durationSeconds)}`;
}

export function ApproveDialog({ request }: { request: AccessRequest }) {
  const { client, state, close, open, toast } = useApp();
  const name = resourceLabel(state.resources, request.resourceId);
  const policy = state.resources.find((r) => r.id === request.resourceId)?.policy;
  // The server's answer for this request (approvalStepUp); the resource's policy only when an older server gave none.
  const stepUp = request.approvalStepUp?.required ?? policy?.stepUp.approve === 'always';
  const stepUpWords = approvalStepUpWords(request);
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string>();
  const summary = `Approve ${summaryOf(request, name)}`;

  const verify = (c: string) => open({ kind: 'stepup', action: 'approve', requestId: request.id, summary, ...(c ? { comment: c } : {}) });
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const c = comment.trim();
    if (stepUp) return verify(c);
    try {
      await client.call('approve', { requestId: request.id, ...(c ? { comment: c } : {}) });
      close();
      toast({ title: `Approved ${requesterName(request)}’s request`, body: `${name} · ${request.level} · ${formatDuration(request.durationSeconds)}`, tone: 'ok' });
    } catch (e) {
      // Policy may ask for step-up only when the risk is high: the server says so, and we verify then.
      if (errorCode(e) === 'stepup_required') verify(c);
      else setError(errorMessage(e));
    }
  };

  return (
    <Dialog title={`Approve ${requesterName(request)}’s request?`} onClose={close}
      description={<p>{name} · {request.level} · {formatDuration(request.durationSeconds)}{request.reason ? ` — “${request.reason}”` : ''}</p>}>
      <form noValidate onSubmit={submit} aria-label="Approve">
        <Field id="approve-comment" label="Comment (optional)">
          {({ id }) => <input id={id} data-autofocus type="text" value={comment} maxLength={2000} onChange={(e) => setComment(e.target.value)} />}
        </Field>
        {stepUp && stepUpWords && <p className="muted" data-testid="approve-stepup-words">{stepUpWords}.</p>}
        {error && <p role="alert" className="error">{error}</p>}
        <div className="actions">
          <button type="submit" className="primary">{stepUp ? 'Verify and approve' : 'Approve'}</button>
          <button type="button" onClick={close}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}

export function DenyDialog({ request }: { request: AccessRequest }) {
  const { client, state, close, toast } = useApp();
  const name = resourceLabel(state.resources, request.resourceId);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();
  const [formError, setFormError] = useState<string>();
  const who = requesterName(request);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!reason.trim()) {
      setError(`Say why — ${who} sees this.`);
      document.getElementById('deny-reason')?.focus();
      return;
    }
    setError(undefined);
    try {
      await client.call('deny', { requestId: request.id, reason: reason.trim() });
      close();
      toast({ title: `Denied ${who}’s request`, body: `${name}: ${reason.trim()}`, tone: 'info' });
    } catch (e) {
      setFormError(errorMessage(e));
    }
  };

  return (
    <Dialog title={`Deny ${who}’s request?`} onClose={close}
      description={<p>{name} · {request.level} · {formatDuration(request.durationSeconds)}</p>}>
      <form noValidate onSubmit={submit} aria-label="Deny">
        <Field id="deny-reason" label="Reason (required)" error={error}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-autofocus type="text" value={reason} maxLength={2000} required aria-required
              aria-invalid={invalid} aria-describedby={describedBy} placeholder="e.g. use the read replica"
              onChange={(e) => setReason(e.target.value)} />
          )}
        </Field>
        {formError && <p role="alert" className="error">{formError}</p>}
        <div className="actions">
          <button type="submit" className="primary danger-fill">Deny</button>
          <button type="button" onClick={close}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}
