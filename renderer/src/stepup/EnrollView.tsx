// "Security keys and codes": register WebAuthn credentials (Touch ID, Windows Hello, a security key), list and
// remove them, and set up an authenticator app (QR code + the secret for manual entry, confirmed with a first code).
// When the user already has a factor, adding another first asks for a step-up with an existing one.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import {
  startRegistration as realStartRegistration,
  type PublicKeyCredentialCreationOptionsJSON,
} from '@simplewebauthn/browser';
import type { StepUpProof } from '../../../shared/contract/http';
import type { CredentialInfo, StepUpStatus, TotpEnrollResult } from '../../../shared/contract/stepup';
import type { EnrollClient } from './client';
import { explainProblem, explainWebAuthnError, type Explanation } from './explain';
import { StepUpView, type WebAuthnBrowser } from './StepUpView';

export interface EnrollViewProps {
  api: EnrollClient;
  /** Injected for tests; defaults to @simplewebauthn/browser. */
  startRegistration?: typeof realStartRegistration;
  webauthn?: WebAuthnBrowser;
  now?: () => number;
}

/** A factor change waiting for the step-up the server asked for: the change resumes with the proof. */
type Pending = { kind: 'passkey'; label: string } | { kind: 'totp' } | { kind: 'remove'; credential: CredentialInfo };

export function EnrollView({ api, startRegistration = realStartRegistration, webauthn, now = Date.now }: EnrollViewProps) {
  const [status, setStatus] = useState<StepUpStatus | undefined>();
  const [credentials, setCredentials] = useState<CredentialInfo[]>([]);
  const [problem, setProblem] = useState<Explanation | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [label, setLabel] = useState('');
  const [totp, setTotp] = useState<TotpEnrollResult | undefined>();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  /** A factor change that needs a step-up first: the step-up view is shown, then the change resumes. */
  const [needsStepUp, setNeedsStepUp] = useState<Pending | undefined>();

  const refresh = useCallback(async () => {
    const [s, c] = await Promise.all([api.status(), api.listCredentials()]);
    if (s.ok) setStatus(s.value);
    if (c.ok) setCredentials(c.value);
    if (!s.ok) setProblem(explainProblem(s.problem));
  }, [api]);

  useEffect(() => { void refresh(); }, [refresh]);

  const addPasskey = useCallback(async (name: string, stepUp?: StepUpProof) => {
    setProblem(undefined); setNotice(undefined); setBusy(true);
    try {
      const opts = await api.registerOptions({ ...(name ? { label: name } : {}), ...(stepUp ? { stepUp } : {}) });
      if (!opts.ok) {
        if (opts.problem.code === 'stepup_required') { setNeedsStepUp({ kind: 'passkey', label: name }); return; }
        setProblem(explainProblem(opts.problem));
        return;
      }
      const optionsJSON = opts.value.options as unknown as PublicKeyCredentialCreationOptionsJSON;
      const started = now();
      let response;
      try {
        response = await startRegistration({ optionsJSON });
      } catch (error) {
        setProblem(explainWebAuthnError(error, { elapsedMs: now() - started, timeoutMs: optionsJSON.timeout ?? 120_000, ceremony: 'create', codeAllowed: false }));
        return;
      }
      const done = await api.registerVerify({ challengeId: opts.value.challengeId, response: response as unknown as Record<string, unknown>, ...(name ? { label: name } : {}) });
      if (!done.ok) { setProblem(explainProblem(done.problem)); return; }
      setNotice(`Added “${done.value.label}”.`);
      setLabel('');
      await refresh();
    } finally {
      setBusy(false);
    }
  }, [api, startRegistration, now, refresh]);

  const startTotp = useCallback(async (stepUp?: StepUpProof) => {
    setProblem(undefined); setNotice(undefined); setBusy(true);
    try {
      const r = await api.totpEnroll(stepUp ? { stepUp } : {});
      if (!r.ok) {
        if (r.problem.code === 'stepup_required') { setNeedsStepUp({ kind: 'totp' }); return; }
        setProblem(explainProblem(r.problem));
        return;
      }
      setTotp(r.value);
    } finally {
      setBusy(false);
    }
  }, [api]);

  const confirmTotp = useCallback(async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    const r = await api.totpConfirm(code);
    if (!r.ok) { setProblem(explainProblem(r.problem)); return; }
    setTotp(undefined); setCode('');
    setNotice('Authenticator app set up.');
    await refresh();
  }, [api, code, refresh]);

  const remove = useCallback(async (c: CredentialInfo, stepUp?: StepUpProof) => {
    setProblem(undefined);
    const r = await api.removeCredential(c.id, stepUp);
    if (!r.ok) {
      if (r.problem.code === 'stepup_required') { setNeedsStepUp({ kind: 'remove', credential: c }); return; }
      setProblem(explainProblem(r.problem));
      return;
    }
    setNotice(`Removed “${c.label}”.`);
    await refresh();
  }, [api, refresh]);

  if (needsStepUp) {
    const pending = needsStepUp;
    return (
      <StepUpView
        api={{
          getChallenge: () => api.getChallenge({ kind: 'enroll' }),
          // The proof goes with the addition itself; the addition reports its own outcome.
          submitProof: async (proof) => {
            setNeedsStepUp(undefined);
            if (pending.kind === 'passkey') await addPasskey(pending.label, proof);
            else if (pending.kind === 'remove') await remove(pending.credential, proof);
            else await startTotp(proof);
            return { ok: true, value: undefined };
          },
        }}
        action={{ kind: 'enroll' }}
        summary={{ title: pending.kind === 'passkey' ? 'Add a passkey or security key to your account' : pending.kind === 'remove' ? `Remove “${pending.credential.label}” from your account` : 'Set up an authenticator app for your account' }}
        onDone={() => undefined}
        onCancel={() => setNeedsStepUp(undefined)}
        webauthn={webauthn}
        now={now}
      />
    );
  }

  return (
    <section className="enroll" aria-labelledby="enroll-title" data-testid="enroll-view">
      <h2 id="enroll-title">Security keys and codes</h2>
      <p className="muted">Stint asks you to confirm sensitive requests and approvals with one of these.</p>
      {problem && <div role="alert" className="error" data-testid="enroll-error" data-kind={problem.kind}><strong>{problem.title}.</strong> {problem.message}</div>}
      {notice && <p role="status" data-testid="enroll-notice">{notice}</p>}

      <h3>Passkeys and security keys</h3>
      {credentials.length === 0
        ? <p className="muted" data-testid="enroll-no-credentials">None yet.</p>
        : (
          <ul data-testid="enroll-credentials">
            {credentials.map((c) => (
              <li key={c.id}>
                <span>{c.label}</span>{' '}
                <span className="muted">added {new Date(c.createdAt).toLocaleDateString()}{c.lastUsedAt ? `, last used ${new Date(c.lastUsedAt).toLocaleString()}` : ''}</span>{' '}
                <button type="button" onClick={() => void remove(c)} aria-label={`Remove ${c.label}`}>Remove</button>
              </li>
            ))}
          </ul>
        )}
      <form onSubmit={(e) => { e.preventDefault(); void addPasskey(label.trim()); }}>
        <label htmlFor="enroll-label">Name (e.g. “Work laptop”)</label>
        <input id="enroll-label" value={label} maxLength={64} onChange={(e) => setLabel(e.target.value)} />
        <button type="submit" className="primary" disabled={busy} data-testid="enroll-add-passkey">Add passkey or security key</button>
      </form>

      <h3>Authenticator app</h3>
      {status?.totp === 'confirmed' && !totp && <p data-testid="enroll-totp-on">Set up.{status.lockedUntil ? ' Codes are locked for now after too many wrong ones.' : ''}</p>}
      {!totp && status?.totp !== 'confirmed' && (
        <button type="button" disabled={busy} onClick={() => void startTotp()} data-testid="enroll-totp-start">Set up an authenticator app</button>
      )}
      {totp && (
        <div data-testid="enroll-totp">
          <p>Scan this with your authenticator app, then type the code it shows.</p>
          <img src={totp.qrDataUrl} alt="QR code for your authenticator app" width={240} height={240} />
          <p className="muted">Can’t scan? Enter this key: <code data-testid="enroll-totp-secret">{totp.secret}</code></p>
          <form onSubmit={(e) => void confirmTotp(e)}>
            <label htmlFor="enroll-code">Code</label>
            <input id="enroll-code" inputMode="numeric" autoComplete="one-time-code" maxLength={6} value={code} onChange={(e) => setCode(e.target.value.replace(/\D/g, ''))} />
            <button type="submit">Confirm</button>
          </form>
        </div>
      )}
    </section>
  );
}
