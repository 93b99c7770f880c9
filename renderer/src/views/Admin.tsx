// The admin console (issue #25), shown only to admins (session.user.admin); the server refuses its calls to anyone
// else. Live access with time left and Revoke (with a reason), access still ending (credentials not yet confirmed
// revoked), pending requests with their approvers and age, and the audit: newest first, filtered, paged by cursor,
// exported, with the chain's verify status. Every read is one AgentApi call; nothing here decides anything.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { AdminGrant, AdminLive, AuditExportFormat, AuditFilterFields, AuditVerifyStatus } from '../../../shared/contract/admin';
import type { AuditEntry } from '../../../shared/contract/http';
import { useApp } from '../context';
import { formatDuration, formatWhen } from '../format';
import { approvalProgress, resourceLabel } from '../policy';
import { Dialog } from '../ui/Dialog';
import { Field } from '../ui/Field';
import { errorMessage } from '../useAgent';
import { Countdown } from './Active';
import { PolicyVersionsPanel, WebhooksPanel } from './AdminConfig';
import { requesterName } from './Approvals';

type Tab = 'live' | 'pending' | 'audit' | 'webhooks' | 'policies';
const TABS: { tab: Tab; label: string; agentOnly?: true }[] = [
  { tab: 'live', label: 'Live access' },
  { tab: 'pending', label: 'Pending requests' },
  { tab: 'audit', label: 'Audit' },
  { tab: 'webhooks', label: 'Webhooks', agentOnly: true },
  { tab: 'policies', label: 'Policy versions', agentOnly: true },
];
const LIVE_REFRESH_MS = 10_000;

/** `withAgentOnlyTabs` false: the server-origin console (renderer/admin), whose page API has no webhook or policy calls. */
export function Admin({ withAgentOnlyTabs = true }: { withAgentOnlyTabs?: boolean }) {
  const [tab, setTab] = useState<Tab>('live');
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Admin</h2>
      <div className="tabs" role="group" aria-label="Admin sections">
        {TABS.filter((t) => withAgentOnlyTabs || !t.agentOnly).map((t) => (
          <button key={t.tab} type="button" className="tab" aria-pressed={tab === t.tab} onClick={() => setTab(t.tab)}>{t.label}</button>
        ))}
      </div>
      {tab === 'audit' ? <AuditPanel />
        : tab === 'webhooks' ? <WebhooksPanel />
          : tab === 'policies' ? <PolicyVersionsPanel />
            : <LivePanel tab={tab} />}
    </section>
  );
}

/** Live and ending grants or pending requests, re-read every few seconds while shown. */
function LivePanel({ tab }: { tab: 'live' | 'pending' }) {
  const { client } = useApp();
  const [live, setLive] = useState<AdminLive>();
  const [error, setError] = useState<string>();
  const [revoking, setRevoking] = useState<AdminGrant>();
  const load = useCallback(() => {
    client.call('adminLive', {}).then((value) => { setLive(value); setError(undefined); }, (e: unknown) => setError(errorMessage(e)));
  }, [client]);
  useEffect(() => {
    load();
    const timer = setInterval(load, LIVE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);

  return (
    <>
      {error && <p role="alert" className="error">Couldn’t load: {error}</p>}
      {!live && !error && <p className="muted">Loading…</p>}
      {live && tab === 'live' && <LiveGrants live={live} onRevoke={setRevoking} />}
      {live && tab === 'pending' && <PendingRequests live={live} />}
      {revoking && <RevokeDialog target={revoking} onClose={() => setRevoking(undefined)} onRevoked={load} />}
    </>
  );
}

function grantTitle(g: AdminGrant, resources: Parameters<typeof resourceLabel>[0]): string {
  return `${g.requesterName ?? g.grant.owner} → ${resourceLabel(resources, g.grant.resourceId)} · ${g.grant.level}`;
}

function LiveGrants({ live, onRevoke }: { live: AdminLive; onRevoke: (g: AdminGrant) => void }) {
  const { state } = useApp();
  // Deadlines are the server's clock; the countdown runs on this computer's.
  const local = (instant: string) => new Date(Date.parse(instant) - state.server.clockOffsetMs).toISOString();
  return (
    <>
      <h3>Active ({live.active.length})</h3>
      {live.active.length === 0 && <p className="muted">Nobody has access right now.</p>}
      <ul className="cards">
        {live.active.map((g) => (
          <li key={g.grant.id} className="card" aria-labelledby={`live-${g.grant.id}`}>
            <h4 id={`live-${g.grant.id}`} className="card-title">{grantTitle(g, state.resources)}</h4>
            <p className="quote">{g.reason ? `“${g.reason}”` : <span className="muted">No reason given</span>}</p>
            <dl className="facts">
              <dt>Time left</dt><dd><Countdown endsAt={local(g.grant.endsAt)} /> (until {formatWhen(g.grant.endsAt)})</dd>
              {g.ticket && (<><dt>Ticket</dt><dd>{g.ticket}</dd></>)}
              <dt>Approved by</dt>
              <dd>{g.grant.breakGlass ? 'Break glass — nobody (review it)' : g.approvals.length ? g.approvals.map((a) => `${a.approverName ?? a.approver} (${a.group})`).join(', ') : 'policy (no approval needed)'}</dd>
              <dt>Since</dt><dd>{formatWhen(g.grant.startsAt)}</dd>
            </dl>
            <div className="actions">
              <button type="button" className="danger" id={`revoke-${g.grant.id}`} aria-label={`Revoke ${grantTitle(g, state.resources)}`} onClick={() => onRevoke(g)}>Revoke…</button>
            </div>
          </li>
        ))}
      </ul>
      {live.ending.length > 0 && (
        <>
          <h3>Ending ({live.ending.length})</h3>
          <ul className="cards compact">
            {live.ending.map((g) => (
              <li key={g.grant.id} className="card">
                <p className="card-title">{grantTitle(g, state.resources)}</p>
                <p className="notice">{endingText(g, resourceLabel(state.resources, g.grant.resourceId))}</p>
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}

/** "ending: waiting for prod-orders (3 tries, last error: …)". */
export function endingText(g: AdminGrant, resource: string): string {
  const tries = g.ending?.tries ?? 0;
  const last = g.ending?.lastError ? `, last error: ${g.ending.lastError}` : '';
  return `ending: waiting for ${resource} (${tries} ${tries === 1 ? 'try' : 'tries'}${last})`;
}

function PendingRequests({ live }: { live: AdminLive }) {
  const { state } = useApp();
  const serverNow = Date.parse(live.serverTime);
  if (live.pending.length === 0) return <p className="muted">No requests are waiting.</p>;
  return (
    <ul className="cards">
      {live.pending.map((r) => (
        <li key={r.id} className="card" aria-labelledby={`pending-${r.id}`}>
          <h4 id={`pending-${r.id}`} className="card-title">{requesterName(r)} → {resourceLabel(state.resources, r.resourceId)} · {r.level} · {formatDuration(r.durationSeconds)}</h4>
          <p className="quote">{r.reason ? `“${r.reason}”` : <span className="muted">No reason given</span>}</p>
          <dl className="facts">
            <dt>Waiting for</dt><dd>{r.state === 'pending_stepup' ? 'the requester to verify' : approvalProgress(r) || 'approval'}</dd>
            {r.approvalsNeeded.length > 0 && (<><dt>Approvers</dt><dd>{r.approvalsNeeded.map((n) => `${n.have}/${n.count} from ${n.group}`).join(', ')}{r.approvals.length ? ` — so far ${r.approvals.map((a) => a.approverName ?? a.approver).join(', ')}` : ''}</dd></>)}
            {r.ticket && (<><dt>Ticket</dt><dd>{r.ticket}</dd></>)}
            <dt>Age</dt><dd>{formatDuration(Math.max(1, Math.round((serverNow - Date.parse(r.createdAt)) / 1000)))}</dd>
          </dl>
        </li>
      ))}
    </ul>
  );
}

function RevokeDialog({ target, onClose, onRevoked }: { target: AdminGrant; onClose: () => void; onRevoked: () => void }) {
  const { client, state, toast } = useApp();
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const title = grantTitle(target, state.resources);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!reason.trim()) return setError('Say why: the reason goes on the audit record and to the person whose access ends.');
    setBusy(true);
    try {
      await client.call('adminRevoke', { grantId: target.grant.id, reason: reason.trim() });
      onClose();
      toast({ title: 'Access revoked', body: `${title}: sessions are being cut and credentials revoked.`, tone: 'ok' });
      onRevoked();
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Revoke ${title}?`} onClose={onClose} description={<p>Their open sessions are cut and the credentials revoked now, as at a deadline.</p>}>
      <form noValidate onSubmit={submit} aria-label="Revoke access">
        <Field id="revoke-reason" label="Reason (required, audited)">
          {({ id }) => <input id={id} data-autofocus type="text" value={reason} maxLength={2000} onChange={(e) => setReason(e.target.value)} />}
        </Field>
        {error && <p role="alert" className="error">{error}</p>}
        <div className="actions">
          <button type="submit" className="danger primary-danger" disabled={busy}>Revoke now</button>
          <button type="button" onClick={onClose}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}

interface FilterForm { user: string; resourceId: string; action: string; from: string; to: string }
const EMPTY_FORM: FilterForm = { user: '', resourceId: '', action: '', from: '', to: '' };

/** The form's fields as the contract's filter: blanks left out, local date-times as instants. */
function toFilter(form: FilterForm): AuditFilterFields {
  const instant = (local: string) => (local ? new Date(local).toISOString() : undefined);
  const from = instant(form.from);
  const to = instant(form.to);
  return {
    ...(form.user.trim() ? { user: form.user.trim() } : {}),
    ...(form.resourceId.trim() ? { resourceId: form.resourceId.trim() } : {}),
    ...(form.action.trim() ? { action: form.action.trim() } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  };
}

const AUDIT_PAGE = 50;

function AuditPanel() {
  const { client, state, toast } = useApp();
  const [form, setForm] = useState<FilterForm>(EMPTY_FORM);
  const [filter, setFilter] = useState<AuditFilterFields>({});
  /** The cursors of the pages before this one (for "Newer"), and this page's. */
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const [page, setPage] = useState<{ entries: AuditEntry[]; next?: number }>();
  const [error, setError] = useState<string>();
  const [exporting, setExporting] = useState<AuditExportFormat>();
  const before = cursors[cursors.length - 1];

  useEffect(() => {
    let live = true;
    setPage(undefined);
    client.call('adminAudit', { ...filter, limit: AUDIT_PAGE, ...(before ? { before } : {}) })
      .then((value) => { if (live) { setPage(value); setError(undefined); } }, (e: unknown) => { if (live) setError(errorMessage(e)); });
    return () => { live = false; };
  }, [client, filter, before]);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    setFilter(toFilter(form));
    setCursors([undefined]);
  };
  const exportAs = async (format: AuditExportFormat) => {
    setExporting(format);
    try {
      const saved = await client.call('adminAuditExport', { ...filter, format });
      toast({ title: `Audit exported (${format === 'csv' ? 'CSV' : 'JSON Lines'})`, body: `Saved to ${saved.path}`, tone: 'ok' });
    } catch (e) {
      toast({ title: 'Export failed', body: errorMessage(e), tone: 'info' });
    } finally {
      setExporting(undefined);
    }
  };
  const set = (key: keyof FilterForm) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });

  return (
    <>
      <VerifyStatus />
      <form className="filters" onSubmit={apply} aria-label="Filter the audit">
        <Field id="audit-user" label="User">{({ id }) => <input id={id} type="text" value={form.user} onChange={set('user')} placeholder="actor or subject" />}</Field>
        {/* Any resource id (an admin may review resources they cannot request); the ones this agent knows suggested. */}
        <Field id="audit-resource" label="Resource">
          {({ id }) => <input id={id} type="text" list="audit-resources" value={form.resourceId} onChange={set('resourceId')} placeholder="resource id" />}
        </Field>
        <datalist id="audit-resources">{state.resources.map((r) => <option key={r.id} value={r.id}>{r.name}</option>)}</datalist>
        <Field id="audit-action" label="Action">{({ id }) => <input id={id} type="text" value={form.action} onChange={set('action')} placeholder="e.g. grant.revoked" />}</Field>
        <Field id="audit-from" label="From">{({ id }) => <input id={id} type="datetime-local" value={form.from} onChange={set('from')} />}</Field>
        <Field id="audit-to" label="To">{({ id }) => <input id={id} type="datetime-local" value={form.to} onChange={set('to')} />}</Field>
        <div className="actions">
          <button type="submit" className="primary">Apply</button>
          <button type="button" onClick={() => exportAs('jsonl')} disabled={exporting !== undefined}>{exporting === 'jsonl' ? 'Exporting…' : 'Export JSON Lines'}</button>
          <button type="button" onClick={() => exportAs('csv')} disabled={exporting !== undefined}>{exporting === 'csv' ? 'Exporting…' : 'Export CSV'}</button>
        </div>
      </form>
      {error && <p role="alert" className="error">Couldn’t load the audit: {error}</p>}
      {!page && !error && <p className="muted">Loading…</p>}
      {page && page.entries.length === 0 && <p className="muted">No entries match.</p>}
      {page && page.entries.length > 0 && (
        <table className="history audit">
          <caption className="muted">Audit, newest first</caption>
          <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">About</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            {page.entries.map((e) => (
              <tr key={e.seq}>
                <td>{e.seq}</td><td>{formatWhen(e.at)}</td><td>{e.actor}</td><td>{e.action}</td>
                <td>{[e.subject, e.resourceId, e.grantId].filter(Boolean).join(' · ')}</td><td>{e.reason ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="actions">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button type="button" disabled={!page?.next} onClick={() => page?.next && setCursors([...cursors, page.next])}>Next page</button>
      </div>
    </>
  );
}

const VERIFY_POLL_MS = 1_000;

function VerifyStatus() {
  const { client } = useApp();
  const [status, setStatus] = useState<AuditVerifyStatus>();
  const [error, setError] = useState<string>();
  const ask = useCallback((run: boolean) => {
    client.call('adminAuditVerify', { run }).then((s) => { setStatus(s); setError(undefined); }, (e: unknown) => setError(errorMessage(e)));
  }, [client]);
  useEffect(() => ask(false), [ask]);
  useEffect(() => {
    if (status?.state !== 'running') return;
    const timer = setTimeout(() => ask(false), VERIFY_POLL_MS);
    return () => clearTimeout(timer);
  }, [status, ask]);

  const r = status?.result;
  const text = !status ? 'Loading…'
    : status.state === 'never' ? 'Not verified since the server started.'
      : status.state === 'running' ? 'Verifying…'
        : status.state === 'failed' ? `Could not finish: ${status.error ?? 'unknown'}`
          : r?.ok ? `Chain intact: ${r.count.toLocaleString()} entries${r.checkpoints !== undefined ? `, matches ${r.checkpoints} signed checkpoint${r.checkpoints === 1 ? '' : 's'}` : ''} (checked ${formatWhen(status.finishedAt!)}).`
            : `Broken${r?.kind ? ` (${r.kind})` : ''} at entry ${r?.seq}: ${r?.reason}`;
  return (
    <div className={`card verify ${r && !r.ok ? 'verify-broken' : ''}`} role="status" aria-label="Audit chain">
      <p className="card-title">Audit chain</p>
      <p>{error ? `Couldn’t read the status: ${error}` : text}</p>
      {status && (
        <p className="muted">
          {status.lastCheckpoint
            ? `Last signed checkpoint: entry ${status.lastCheckpoint.seq}, ${formatWhen(status.lastCheckpoint.at)}`
            : status.checkpointsConfigured ? 'No signed checkpoint yet.' : 'Signed checkpoints are not configured (audit.checkpoints): a cut-off tail would not show.'}
        </p>
      )}
      <div className="actions"><button type="button" onClick={() => ask(true)} disabled={status?.state === 'running'}>Verify now</button></div>
    </div>
  );
}
