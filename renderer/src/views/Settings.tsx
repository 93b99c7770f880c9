import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { DEFAULT_SCOPES, type AgentSettings, type SettingsPatch } from '../../../shared/contract/agent';
import { useApp } from '../context';
import { formatDuration } from '../format';
import { PRESET_SECONDS } from '../policy';
import { errorMessage } from '../useAgent';
import { Field } from '../ui/Field';
import { EnrollView } from '../stepup/EnrollView';
import { agentEnrollClient } from '../agent/enroll-client';

interface Draft {
  serverUrl: string; issuer: string; clientId: string; audience: string;
  scopes: string; audienceParameter: AgentSettings['audienceParameter'];
  defaultDuration: string; preferredClient: 'psql' | 'uri'; ports: Record<string, string>;
}

function toDraft(s: AgentSettings): Draft {
  return {
    serverUrl: s.serverUrl ?? '',
    issuer: s.issuer ?? '',
    clientId: s.clientId,
    audience: s.audience ?? '',
    scopes: s.scopes,
    audienceParameter: s.audienceParameter,
    defaultDuration: s.defaultDurationSeconds ? String(s.defaultDurationSeconds) : '',
    preferredClient: s.preferredClient,
    ports: Object.fromEntries(Object.entries(s.ports).map(([k, v]) => [k, String(v)])),
  };
}

export function Settings() {
  const { client, state, settings, setSettings } = useApp();
  const enroll = useMemo(() => agentEnrollClient(client), [client]);
  const [draft, setDraft] = useState<Draft>();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [status, setStatus] = useState<{ ok: boolean; text: string }>();
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    let live = true;
    client.call('getSettings', {}).then((s) => {
      if (!live) return;
      setSettings(s);
      setDraft(toDraft(s));
    }).catch((e) => live && setStatus({ ok: false, text: errorMessage(e) }));
    return () => { live = false; };
  }, [client, setSettings]);

  const current = draft ?? (settings ? toDraft(settings) : undefined);
  if (!current) {
    return (
      <section className="view" aria-labelledby="view-title">
        <h2 id="view-title" tabIndex={-1}>Settings</h2>
        {status ? <p role="alert" className="error">{status.text}</p> : <p className="muted">Loading…</p>}
      </section>
    );
  }

  const update = (patch: Partial<Draft>) => { setDraft({ ...current, ...patch }); setStatus(undefined); };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    const found: Record<string, string> = {};
    const patch: SettingsPatch = { preferredClient: current.preferredClient, ports: {} };
    // The sign-in service group is saved together; the agent checks what changed (server, issuer, client ID,
    // audience) before keeping any of it, and says what failed.
    const webAddress = (text: string) => {
      try {
        return ['https:', 'http:'].includes(new URL(text).protocol);
      } catch {
        return false;
      }
    };
    const url = current.serverUrl.trim();
    if (url) {
      if (webAddress(url)) patch.serverUrl = url;
      else found.serverUrl = 'Enter the server’s address, like https://stint.example.com';
    } else if (settings?.serverUrl) found.serverUrl = 'Enter the server’s address: it can be changed, not removed.';
    const issuer = current.issuer.trim();
    const audience = current.audience.trim();
    const clientId = current.clientId.trim();
    if (issuer) {
      if (webAddress(issuer)) patch.issuer = issuer;
      else found.issuer = 'Enter the sign-in service’s address, like https://login.example.com';
    } else if (settings?.issuer) found.issuer = 'Enter the sign-in service’s address: it can be changed, not removed.';
    else if (audience) found.issuer = 'Signing in needs the sign-in service’s address as well as the audience.';
    if (audience) patch.audience = audience;
    else if (settings?.audience) found.audience = 'Enter the API audience: it can be changed, not removed.';
    else if (issuer) found.audience = 'Signing in needs the API audience as well as the sign-in service.';
    if (clientId) patch.clientId = clientId;
    else found.clientId = 'Enter the client ID (usually stint-agent).';
    const scopes = current.scopes.trim().split(/\s+/).filter(Boolean);
    if (scopes.includes('openid')) patch.scopes = scopes.join(' ');
    else found.scopes = 'The scopes must include openid (Stint signs in with OpenID Connect).';
    patch.audienceParameter = current.audienceParameter;
    if (current.defaultDuration) patch.defaultDurationSeconds = Number(current.defaultDuration);
    for (const [resourceId, text] of Object.entries(current.ports)) {
      if (!text.trim()) continue;
      const port = Number(text);
      if (!Number.isInteger(port) || port < 1024 || port > 65535) found[`port-${resourceId}`] = 'A port from 1024 to 65535, or empty for automatic';
      else patch.ports![resourceId] = port;
    }
    setErrors(found);
    if (Object.keys(found).length) {
      setStatus({ ok: false, text: 'Some settings need fixing before they can be saved.' });
      return;
    }
    const checking = (['serverUrl', 'issuer', 'clientId', 'audience', 'scopes'] as const).some((k) => patch[k] !== undefined && patch[k] !== settings?.[k]);
    setSaving(true);
    setStatus(checking ? { ok: true, text: 'Checking the server and the sign-in service…' } : undefined);
    try {
      const saved = await client.call('updateSettings', patch);
      setSettings(saved);
      setDraft(toDraft(saved));
      setStatus({ ok: true, text: 'Settings saved.' });
    } catch (e) {
      // Nothing was saved: what the user typed stays in the form, with the reason next to it.
      setStatus({ ok: false, text: errorMessage(e) });
    } finally {
      setSaving(false);
    }
  };

  const resources = [...state.resources].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Settings</h2>
      <form noValidate onSubmit={save} className="settings" aria-label="Settings">
        <fieldset className="sign-in-service" aria-describedby="sign-in-service-hint">
          <legend>Sign-in service</legend>
          <p id="sign-in-service-hint" className="hint">Your administrator gives you these. When you save, Stint checks the ones you changed with the server and the sign-in service, and keeps them only if the check passes.</p>
          <Field id="settings-server" label="Server address" error={errors.serverUrl} hint="Where your company’s Stint server runs.">
            {({ id, describedBy, invalid }) => (
              <input id={id} type="url" value={current.serverUrl} aria-invalid={invalid} aria-describedby={describedBy}
                placeholder="https://stint.example.com" onChange={(e) => update({ serverUrl: e.target.value })} />
            )}
          </Field>
          <Field id="settings-issuer" label="Sign-in address (issuer)" error={errors.issuer}
            hint="Your company’s sign-in service (its OpenID Connect issuer), exactly as your administrator wrote it.">
            {({ id, describedBy, invalid }) => (
              <input id={id} type="url" value={current.issuer} aria-invalid={invalid} aria-describedby={describedBy}
                placeholder="https://login.example.com" onChange={(e) => update({ issuer: e.target.value })} />
            )}
          </Field>
          <Field id="settings-client-id" label="Client ID" error={errors.clientId} hint="How the sign-in service knows this app; usually stint-agent.">
            {({ id, describedBy, invalid }) => (
              <input id={id} type="text" value={current.clientId} aria-invalid={invalid} aria-describedby={describedBy}
                autoCapitalize="off" autoCorrect="off" spellCheck={false} onChange={(e) => update({ clientId: e.target.value })} />
            )}
          </Field>
          <Field id="settings-audience" label="API audience" error={errors.audience}
            hint="Who your sign-in is for: the name the Stint server expects in its access tokens, often its address followed by /api.">
            {({ id, describedBy, invalid }) => (
              <input id={id} type="text" value={current.audience} aria-invalid={invalid} aria-describedby={describedBy}
                autoCapitalize="off" autoCorrect="off" spellCheck={false}
                placeholder="https://stint.example.com/api" onChange={(e) => update({ audience: e.target.value })} />
            )}
          </Field>
          <details className="advanced" open={Boolean(errors.scopes) || current.scopes !== DEFAULT_SCOPES || current.audienceParameter !== 'resource'}>
            <summary>For your identity provider</summary>
            <Field id="settings-scopes" label="Scopes" error={errors.scopes}
              hint="Asked for at sign-in, separated by spaces. Remove groups if your sign-in service does not know it (it then refuses the whole sign-in).">
              {({ id, describedBy, invalid }) => (
                <input id={id} type="text" value={current.scopes} aria-invalid={invalid} aria-describedby={describedBy}
                  autoCapitalize="off" autoCorrect="off" spellCheck={false} onChange={(e) => update({ scopes: e.target.value })} />
              )}
            </Field>
            <Field id="settings-audience-parameter" label="Ask for the audience with"
              hint="Okta and most: the resource parameter. Auth0: audience. Keycloak, Entra ID: not asked (the sign-in service adds it itself).">
              {({ id, describedBy }) => (
                <select id={id} value={current.audienceParameter} aria-describedby={describedBy}
                  onChange={(e) => update({ audienceParameter: e.target.value as Draft['audienceParameter'] })}>
                  <option value="resource">resource (RFC 8707)</option>
                  <option value="audience">audience</option>
                  <option value="none">nothing: the sign-in service adds it</option>
                </select>
              )}
            </Field>
          </details>
        </fieldset>
        <Field id="settings-duration" label="Default duration" hint="Used when a resource’s policy allows it.">
          {({ id, describedBy }) => (
            <select id={id} value={current.defaultDuration} aria-describedby={describedBy} onChange={(e) => update({ defaultDuration: e.target.value })}>
              <option value="">The resource’s default</option>
              {PRESET_SECONDS.map((s) => <option key={s} value={String(s)}>{formatDuration(s)}</option>)}
            </select>
          )}
        </Field>
        <Field id="settings-client" label="When access is ready">
          {({ id }) => (
            <select id={id} value={current.preferredClient} onChange={(e) => update({ preferredClient: e.target.value as Draft['preferredClient'] })}>
              <option value="psql">Open the client</option>
              <option value="uri">Copy the connection URI</option>
            </select>
          )}
        </Field>
        <fieldset className="ports">
          <legend>Local ports</legend>
          <p className="hint">Each database or host keeps the same port on this computer, so saved connections keep working. Leave empty for automatic.</p>
          {resources.length === 0 && <p className="muted">{state.session.status === 'signed_in' ? 'Nothing is available for you to request yet.' : 'Sign in to see what you may request.'}</p>}
          {resources.map((r) => (
            <Field key={r.id} id={`port-${r.id}`} label={`Port for ${r.name}`} error={errors[`port-${r.id}`]}>
              {({ id, describedBy, invalid }) => (
                <input id={id} type="number" inputMode="numeric" min={1024} max={65535} value={current.ports[r.id] ?? ''}
                  placeholder="automatic" aria-invalid={invalid} aria-describedby={describedBy}
                  onChange={(e) => update({ ports: { ...current.ports, [r.id]: e.target.value } })} />
              )}
            </Field>
          ))}
        </fieldset>
        <div className="actions">
          <button type="submit" className="primary" disabled={saving} aria-busy={saving}>Save settings</button>
          {status && <p role={status.ok ? 'status' : 'alert'} className={status.ok ? 'ok' : 'error'}>{status.text}</p>}
        </div>
      </form>
      <section className="stepup-settings" aria-labelledby="stepup-settings-title">
        <h3 id="stepup-settings-title">Passkeys and one-time codes</h3>
        <EnrollView api={enroll} />
      </section>
    </section>
  );
}
