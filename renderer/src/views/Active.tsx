import { useEffect, useState } from 'react';
import type { LocalGrant } from '../../../shared/contract/agent';
import { kindWords } from '../../../shared/domain/kinds';
import { useApp } from '../context';
import { countdownChangesInMs, formatCountdown, formatWhen } from '../format';
import { isLive } from '../policy';
import { errorCode, errorMessage } from '../useAgent';
import { ConnectionDetails } from './ConnectionDetails';

/** Time left until `endsAt` (this computer's clock), redrawn only when the text changes. */
export function Countdown({ endsAt }: { endsAt: string }) {
  const end = Date.parse(endsAt);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const wait = countdownChangesInMs(end - now);
    if (!Number.isFinite(wait)) return;
    const timer = setTimeout(() => setNow(Date.now()), Math.min(wait + 5, 60_000));
    return () => clearTimeout(timer);
  }, [end, now]);
  const text = formatCountdown(end - now);
  return <span className="countdown" role="timer" aria-label={`${text} left`}>{text}</span>;
}

function tunnelText(local: LocalGrant): string {
  const t = local.tunnel;
  if (!t) return 'Not connected';
  if (t.status === 'open') return `${t.host}:${t.port ?? '?'}${t.connections ? ` · ${t.connections} connection${t.connections === 1 ? '' : 's'}` : ''}`;
  if (t.status === 'opening') return 'Opening the tunnel…';
  if (t.status === 'failed') return 'The tunnel could not be opened';
  return 'Tunnel closed';
}

export function Active() {
  const { state, run, open } = useApp();
  // In the agent's order: soonest end first.
  const active = state.grants.filter((g) => isLive(g));
  const ended = state.grants.filter((g) => !isLive(g));
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Active</h2>
      {active.length === 0 && <p className="muted">No active access. Pick a database under Request access.</p>}
      <ul className="cards">
        {active.map((local) => {
          const g = local.grant;
          const name = local.resourceName ?? g.resourceId;
          if (local.leftFromBefore) return <LeftFromBefore key={g.id} local={local} name={name} />;
          const open_ = local.tunnel?.status === 'open';
          return (
            <li key={g.id} className={`card grant${local.phase === 'ending_soon' ? ' ending-soon' : ''}`} aria-labelledby={`grant-${g.id}`}>
              <div className="grant-head">
                <h3 id={`grant-${g.id}`} className="card-title">{name} · {g.level}{g.breakGlass ? ' · break glass' : ''}</h3>
                <p className="time-left"><Countdown endsAt={local.localEndsAt} /> left</p>
              </div>
              <p className="status-line">{tunnelText(local)}</p>
              {local.tunnel?.message && <p className="notice">{local.tunnel.message}</p>}
              <ConnectionDetails local={local} name={name} />
              <div className="actions">
                {open_ ? (
                  <>
                    <button type="button" aria-label={`Open ${name} in ${kindWords(g.kind).client}`}
                      onClick={() => run('openPsql', { grantId: g.id })}>Open in {kindWords(g.kind).client}</button>
                  </>
                ) : (
                  <button type="button" className="primary" aria-label={`Connect to ${name}`}
                    onClick={() => run('connect', { grantId: g.id })}>Connect</button>
                )}
                <button type="button" id={`extend-${g.id}`} aria-label={`Extend ${name}`} onClick={() => open({ kind: 'extend', grantId: g.id })}>Extend…</button>
                <button type="button" id={`release-${g.id}`} className="danger" aria-label={`End access to ${name} now`} onClick={() => open({ kind: 'release', grantId: g.id })}>End now…</button>
              </div>
            </li>
          );
        })}
      </ul>
      {ended.length > 0 && (
        <>
          <h3>Ended</h3>
          <ul className="cards compact">
            {ended.map((local) => (
              <li key={local.grant.id} className="card">
                <strong>{local.resourceName ?? local.grant.resourceId} · {local.grant.level}</strong>{' '}
                <span className="muted">
                  {endedText(local)}{local.grant.endedAt ? ` at ${formatWhen(local.grant.endedAt)}` : ''} — tunnel closed, credentials wiped
                </span>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/**
 * A grant of this device that Stint stopped holding (it crashed while the access was active): still running on the
 * server, but without keys here. Resume takes it back with new keys for the time left; End gives it up.
 */
function LeftFromBefore({ local, name }: { local: LocalGrant; name: string }) {
  const { client, alert, open, toast } = useApp();
  const [busy, setBusy] = useState(false);
  const g = local.grant;
  const resume = async () => {
    setBusy(true);
    try {
      const connection = await client.call('resumeGrant', { grantId: g.id });
      toast({ title: `${name} resumed`, body: `New keys, same end — connected on ${connection.host}:${connection.port}.`, tone: 'ok' });
    } catch (e) {
      // Where the policy asked the request for a step-up, taking it back asks for a fresh one.
      if (errorCode(e) === 'stepup_required') open({ kind: 'stepup', action: 'resume', requestId: g.requestId, grantId: g.id });
      else alert(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="card grant left-from-before" aria-labelledby={`grant-${g.id}`}>
      <div className="grant-head">
        <h3 id={`grant-${g.id}`} className="card-title">{name} · {g.level}{g.breakGlass ? ' · break glass' : ''}</h3>
        <p className="time-left"><Countdown endsAt={local.localEndsAt} /> left</p>
      </div>
      <p className="notice">Stint stopped while this access was active.</p>
      <div className="actions">
        <button type="button" className="primary" aria-label={`Resume ${name}`} disabled={busy} onClick={() => void resume()}>{busy ? 'Resuming…' : 'Resume'}</button>
        <button type="button" id={`release-${g.id}`} className="danger" aria-label={`End access to ${name} now`} onClick={() => open({ kind: 'release', grantId: g.id })}>End</button>
      </div>
    </li>
  );
}

export function endedText(local: LocalGrant): string {
  switch (local.grant.state) {
    case 'released': return 'Ended by you';
    case 'revoked': return `Revoked${local.grant.endReason ? `: ${local.grant.endReason}` : ''}`;
    case 'failed': return `Failed${local.grant.endReason ? `: ${local.grant.endReason}` : ''}`;
    default: return 'Time ran out';
  }
}
