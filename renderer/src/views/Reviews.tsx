// Break-glass reviews in the Approvals view (#24): each break-glass use waiting for my review, with a form to record
// it — ok, or a concern with a note — which the server puts on the audit record.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { BreakGlassReview, ReviewOutcome } from '../../../shared/contract/reviews';
import { useApp } from '../context';
import { formatWhen } from '../format';
import { resourceLabel } from '../policy';
import { ChoiceButtons, Field } from '../ui/Field';
import { errorCode, errorMessage } from '../useAgent';

type Loaded = { status: 'loading' } | { status: 'ready'; reviews: BreakGlassReview[] } | { status: 'unavailable' } | { status: 'failed'; message: string };

export function Reviews() {
  const { client } = useApp();
  const [loaded, setLoaded] = useState<Loaded>({ status: 'loading' });
  const load = useCallback(async () => {
    try {
      setLoaded({ status: 'ready', reviews: (await client.call('listReviews', {})).reviews });
    } catch (error) {
      // An agent that does not offer reviews (an older one behind the socket): the section stays away.
      setLoaded(errorCode(error) === 'unknown_method' ? { status: 'unavailable' } : { status: 'failed', message: errorMessage(error) });
    }
  }, [client]);
  useEffect(() => { void load(); }, [load]);

  if (loaded.status === 'unavailable' || loaded.status === 'loading') return null;
  return (
    <section aria-labelledby="reviews-title">
      <h3 id="reviews-title">Break-glass reviews</h3>
      {loaded.status === 'failed' && <p role="alert" className="error">Couldn’t load the reviews: {loaded.message}</p>}
      {loaded.status === 'ready' && loaded.reviews.length === 0 && <p className="muted">No break-glass use is waiting for your review.</p>}
      {loaded.status === 'ready' && (
        <ul className="cards">
          {loaded.reviews.map((r) => <ReviewCard key={r.id} review={r} onRecorded={load} />)}
        </ul>
      )}
    </section>
  );
}

function ReviewCard({ review, onRecorded }: { review: BreakGlassReview; onRecorded: () => Promise<void> }) {
  const { state, client, toast } = useApp();
  const [outcome, setOutcome] = useState<ReviewOutcome>('ok');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string>();
  const [formError, setFormError] = useState<string>();
  const name = resourceLabel(state.resources, review.resourceId);
  const noteId = `review-note-${review.id}`;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (outcome === 'concern' && !note.trim()) {
      setError('Say what the concern is.');
      document.getElementById(noteId)?.focus();
      return;
    }
    setError(undefined);
    try {
      await client.call('recordReview', { reviewId: review.id, outcome, ...(note.trim() ? { note: note.trim() } : {}) });
      toast({ title: 'Review recorded', body: `${review.requester}’s break-glass use on ${name}: ${outcome === 'ok' ? 'OK' : 'concern'}`, tone: 'info' });
      await onRecorded();
    } catch (e) {
      setFormError(errorMessage(e));
    }
  };

  return (
    <li className="card review" aria-labelledby={`review-${review.id}`}>
      <h4 id={`review-${review.id}`} className="card-title">{review.requester} used break-glass on {name}</h4>
      <p className="quote">“{review.reason}”</p>
      <dl className="facts">
        <dt>Used</dt><dd>{formatWhen(review.createdAt)}</dd>
        <dt>Review due</dt><dd>{formatWhen(review.dueAt)}{review.overdue && <span className="badge risk-high"> overdue</span>}</dd>
      </dl>
      <form noValidate onSubmit={submit} aria-label={`Review ${review.requester}’s break-glass use on ${name}`}>
        <ChoiceButtons legend="Outcome" name={`outcome-${review.id}`} value={outcome} onChange={setOutcome}
          choices={[{ value: 'ok', label: 'OK — justified' }, { value: 'concern', label: 'Concern' }]} />
        <Field id={noteId} label={outcome === 'concern' ? 'Note (required)' : 'Note (optional)'} error={error}>
          {({ id, describedBy, invalid }) => (
            <input id={id} type="text" value={note} maxLength={2000} aria-invalid={invalid} aria-describedby={describedBy}
              placeholder="e.g. incident INC-9 confirms it" onChange={(e) => setNote(e.target.value)} />
          )}
        </Field>
        {formError && <p role="alert" className="error">{formError}</p>}
        <div className="actions">
          <button type="submit" className="primary" id={`record-review-${review.id}`}>Record review</button>
        </div>
      </form>
    </li>
  );
}
