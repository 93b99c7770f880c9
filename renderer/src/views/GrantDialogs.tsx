import { useState, type FormEvent } from 'react';
import type { LocalGrant } from '../../../shared/contract/agent';
import { useApp } from '../context';
import { Dialog } from '../ui/Dialog';
import { ChoiceButtons, Field } from '../ui/Field';
import { formatDuration } from '../format';
import { extendChoices } from '../policy';
import { errorMessage } from '../useAgent';
import { Countdown } from './Active';

export function ExtendDialog({ local }: { local: LocalGrant }) {
  const { client, state, close, toast } = useApp();
  const g = local.grant;
  const name = local.resourceName ?? g.resourceId;
  const policy = state.resources.find((r) => r.id === g.resourceId)?.policy;
  const grantSeconds = Math.round((Date.parse(g.endsAt) - Date.parse(g.startsAt)) / 1000);
  const choices = extendChoices(policy, grantSeconds);
  const [seconds, setSeconds] = useState(choices[0]?.seconds ?? 0);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    try {
      const out = await client.call('extend', { grantId: g.id, durationSeconds: seconds, ...(reason.trim() ? { reason: reason.trim() } : {}) });
      close();
      // Policy may send an extension back for approval: say so instead of claiming it is done.
      toast(out.request
        ? { title: `Asked to extend ${name} by ${formatDuration(seconds)} — waiting for approval`, tone: 'info' }
        : { title: `${name} extended by ${formatDuration(seconds)}`, tone: 'ok' });
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  return (
    <Dialog title={`Extend ${name}`} onClose={close} description={<p className="muted">{g.level} · <Countdown endsAt={local.localEndsAt} /> left</p>}>
      {choices.length === 0 ? (
        <>
          <p className="notice">This access can’t be extended further. Ask again when it ends.</p>
          <div className="actions"><button type="button" data-autofocus onClick={close}>Close</button></div>
        </>
      ) : (
        <form noValidate onSubmit={submit} aria-label={`Extend ${name}`}>
          <ChoiceButtons legend="Add" name="extend" value={seconds} onChange={setSeconds}
            choices={choices.map((c) => ({ value: c.seconds, label: `+${c.label}` }))} />
          <Field id="extend-reason" label="Reason">
            {({ id }) => <input id={id} data-autofocus type="text" value={reason} maxLength={2000} onChange={(e) => setReason(e.target.value)} />}
          </Field>
          {policy?.extend.reapproval && <p className="notice">Extending needs approval again.</p>}
          {error && <p role="alert" className="error">{error}</p>}
          <div className="actions">
            <button type="submit" className="primary">Extend by {formatDuration(seconds)}</button>
            <button type="button" onClick={close}>Cancel</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

export function ReleaseDialog({ local }: { local: LocalGrant }) {
  const { client, close, toast } = useApp();
  const name = local.resourceName ?? local.grant.resourceId;
  const [error, setError] = useState<string>();
  const end = async () => {
    try {
      await client.call('release', { grantId: local.grant.id });
      close();
      toast({ title: `${name} access ended`, body: 'Tunnel closed, credentials wiped.', tone: 'info' });
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  return (
    <Dialog title={`End access to ${name} now?`} onClose={close}>
      <p>The tunnel closes, open sessions are cut and the credentials are wiped. You can ask again later.</p>
      {error && <p role="alert" className="error">{error}</p>}
      <div className="actions">
        <button type="button" className="danger primary-danger" onClick={end}>End now</button>
        <button type="button" data-autofocus onClick={close}>Keep access</button>
      </div>
    </Dialog>
  );
}
