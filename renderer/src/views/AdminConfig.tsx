// The admin console's view of what runs from the config: each outbound webhook endpoint with its last delivery,
// failures and backlog (issue #24), and each policy's versions newest first with their diffs (issue #25). Read-only:
// one AgentApi call each, re-read when the tab is opened.
import { useCallback, useEffect, useState } from 'react';
import type { AgentOutput } from '../../../shared/contract/agent';
import type { WebhookEndpointStatus } from '../../../shared/contract/webhooks';
import { useApp } from '../context';
import { formatWhen } from '../format';
import { errorMessage } from '../useAgent';

type PolicyVersionEntry = AgentOutput<'adminPolicyHistory'>['versions'][number];

/** One call's answer, or why it failed. */
function useAdminRead<T>(read: () => Promise<T>): { value?: T; error?: string } {
  const [state, setState] = useState<{ value?: T; error?: string }>({});
  useEffect(() => {
    let live = true;
    read().then((value) => live && setState({ value }), (e: unknown) => live && setState({ error: errorMessage(e) }));
    return () => { live = false; };
  }, [read]);
  return state;
}

function Loading({ error, loaded }: { error?: string; loaded: boolean }) {
  if (error) return <p role="alert" className="error">Couldn’t load: {error}</p>;
  return loaded ? null : <p className="muted">Loading…</p>;
}

export function WebhooksPanel() {
  const { client } = useApp();
  const read = useCallback(() => client.call('adminWebhooks', {}), [client]);
  const { value, error } = useAdminRead(read);
  return (
    <>
      <Loading error={error} loaded={!!value} />
      {value && value.endpoints.length === 0 && <p className="muted">No webhook endpoints are configured (webhooks in the config file).</p>}
      <ul className="cards">
        {value?.endpoints.map((w) => <WebhookCard key={w.id} w={w} />)}
      </ul>
    </>
  );
}

function WebhookCard({ w }: { w: WebhookEndpointStatus }) {
  const last = w.lastFailure && (!w.lastDeliveryAt || Date.parse(w.lastFailure.at) > Date.parse(w.lastDeliveryAt))
    ? `failed ${formatWhen(w.lastFailure.at)} (${w.lastFailure.eventType}): ${w.lastFailure.error}`
    : w.lastDeliveryAt ? `delivered ${formatWhen(w.lastDeliveryAt)}` : 'nothing sent yet';
  return (
    <li className="card" aria-labelledby={`webhook-${w.id}`}>
      <h4 id={`webhook-${w.id}`} className="card-title">{w.id}</h4>
      <dl className="facts">
        <dt>Sends to</dt><dd>{w.url}</dd>
        <dt>Format</dt><dd>{w.format}</dd>
        <dt>Events</dt><dd>{w.events.length ? w.events.join(', ') : 'all'}</dd>
        <dt>Last delivery</dt><dd>{last}</dd>
        <dt>Delivered</dt><dd>{w.delivered}</dd>
        <dt>Failures</dt><dd>{w.failed} given up, {w.failedAttempts} failed {w.failedAttempts === 1 ? 'attempt' : 'attempts'}</dd>
        <dt>Backlog</dt><dd>{w.pending}{w.oldestPendingAt ? ` (oldest ${formatWhen(w.oldestPendingAt)})` : ''}</dd>
      </dl>
    </li>
  );
}

export function PolicyVersionsPanel() {
  const { client } = useApp();
  const read = useCallback(() => client.call('adminPolicyHistory', {}), [client]);
  const { value, error } = useAdminRead(read);
  // The server answers newest first across policies; grouping keeps that order within each policy.
  const byPolicy = new Map<string, PolicyVersionEntry[]>();
  for (const v of value?.versions ?? []) byPolicy.set(v.policyId, [...(byPolicy.get(v.policyId) ?? []), v]);
  return (
    <>
      <Loading error={error} loaded={!!value} />
      {value && byPolicy.size === 0 && <p className="muted">No policy versions recorded yet.</p>}
      {[...byPolicy].map(([policyId, versions]) => (
        <section key={policyId} aria-labelledby={`policy-${policyId}`}>
          <h3 id={`policy-${policyId}`}>{policyId}</h3>
          <ul className="cards">
            {versions.map((v) => (
              <li key={v.version} className="card" aria-label={`${policyId} version ${v.version}`}>
                <p className="card-title">Version {v.version}{v.current && <> <span className="badge">current</span></>}</p>
                <dl className="facts">
                  <dt>Hash</dt><dd><code>{v.hash}</code></dd>
                  <dt>When</dt><dd>{formatWhen(v.createdAt)}</dd>
                </dl>
                <pre className="diff">{v.diff || '(no change)'}</pre>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </>
  );
}
