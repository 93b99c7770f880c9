// The step-up view: shows exactly what is being requested or approved, asks the OS authenticator (through
// @simplewebauthn/browser) or for a one-time code when policy allows, and explains every failure in plain words.
// It must run at an origin under the grant server's domain (the RP ID); see docs/step-up.md.
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import {
  browserSupportsWebAuthn as realSupportsWebAuthn,
  startAuthentication as realStartAuthentication,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import type { StepUpChallenge, StepUpActionRef } from '../../../shared/contract/stepup';
import type { StepUpClient } from './client';
import { clockTime, explainNoWebAuthn, explainProblem, explainWebAuthnError, type Explanation } from './explain';

export interface ActionSummary {
  /** e.g. "Request write access to orders-prod" or "Approve alice's request". */
  title: string;
  /** Label/value pairs the user should check: resource, level, duration, reason, requester… */
  details?: [string, string][];
}

export interface WebAuthnBrowser {
  startAuthentication: typeof realStartAuthentication;
  browserSupportsWebAuthn: () => boolean;
}

export interface StepUpViewProps {
  api: StepUpClient;
  action: StepUpActionRef;
  summary: ActionSummary;
  onDone: (result: unknown) => void;
  onCancel?: () => void;
  onEnroll?: () => void;
  /** Injected for tests; defaults to @simplewebauthn/browser. */
  webauthn?: WebAuthnBrowser;
  now?: () => number;
}

type State =
  | { phase: 'loading' }
  | { phase: 'ready'; challenge: StepUpChallenge }
  | { phase: 'working'; challenge: StepUpChallenge; what: 'webauthn' | 'totp' }
  | { phase: 'done' }
  | { phase: 'blocked'; explanation: Explanation };

const defaultWebAuthn: WebAuthnBrowser = { startAuthentication: realStartAuthentication, browserSupportsWebAuthn: realSupportsWebAuthn };

export function StepUpView({ api, action, summary, onDone, onCancel, onEnroll, webauthn = defaultWebAuthn, now = Date.now }: StepUpViewProps) {
  const [state, setState] = useState<State>({ phase: 'loading' });
  const [problem, setProblem] = useState<Explanation | undefined>();
  const [code, setCode] = useState('');
  const alive = useRef(true);
  useEffect(() => () => { alive.current = false; }, []);

  const loadChallenge = useCallback(async () => {
    setState({ phase: 'loading' });
    const r = await api.getChallenge(action);
    if (!alive.current) return;
    if (r.ok) setState({ phase: 'ready', challenge: r.value });
    else setState({ phase: 'blocked', explanation: explainProblem(r.problem) });
  }, [api, action]);

  useEffect(() => { void loadChallenge(); }, [loadChallenge]);

  const finish = useCallback(async (challenge: StepUpChallenge, proof: Parameters<StepUpClient['submitProof']>[0]) => {
    const r = await api.submitProof(proof);
    if (!alive.current) return;
    if (r.ok) {
      setState({ phase: 'done' });
      onDone(r.value);
      return;
    }
    const explanation = explainProblem(r.problem);
    setProblem(explanation);
    if (explanation.next === 'new_challenge') await loadChallenge();
    else setState({ phase: 'ready', challenge });
  }, [api, onDone, loadChallenge]);

  const confirmWithPasskey = useCallback(async (challenge: StepUpChallenge) => {
    setProblem(undefined);
    const codeAllowed = challenge.methods.includes('totp');
    if (!challenge.webauthn || !webauthn.browserSupportsWebAuthn()) {
      setProblem(explainNoWebAuthn(codeAllowed));
      return;
    }
    setState({ phase: 'working', challenge, what: 'webauthn' });
    const started = now();
    const optionsJSON = challenge.webauthn as unknown as PublicKeyCredentialRequestOptionsJSON;
    let response;
    try {
      response = await webauthn.startAuthentication({ optionsJSON });
    } catch (error) {
      if (!alive.current) return;
      const explanation = explainWebAuthnError(error, { elapsedMs: now() - started, timeoutMs: optionsJSON.timeout ?? 120_000, ceremony: 'get', codeAllowed });
      setProblem(explanation);
      if (explanation.next === 'new_challenge') await loadChallenge();
      else setState({ phase: 'ready', challenge });
      return;
    }
    await finish(challenge, { method: 'webauthn', challengeId: challenge.challengeId, response: response as unknown as Record<string, unknown> });
  }, [webauthn, now, finish, loadChallenge]);

  const submitCode = useCallback(async (event: FormEvent, challenge: StepUpChallenge) => {
    event.preventDefault();
    setProblem(undefined);
    if (!/^[0-9]{6}$/.test(code)) {
      setProblem({ kind: 'wrong_code', title: 'Six digits', message: 'Type the six-digit code your authenticator app shows now.' });
      return;
    }
    setState({ phase: 'working', challenge, what: 'totp' });
    await finish(challenge, { method: 'totp', challengeId: challenge.challengeId, code });
    if (alive.current) setCode('');
  }, [code, finish]);

  const challenge = state.phase === 'ready' || state.phase === 'working' ? state.challenge : undefined;
  const locked = challenge?.totp?.lockedUntil && Date.parse(challenge.totp.lockedUntil) > now() ? challenge.totp.lockedUntil : undefined;

  return (
    <section className="stepup" aria-labelledby="stepup-title" data-testid="stepup-view">
      <h2 id="stepup-title">Confirm it is you</h2>
      <div className="stepup-summary" data-testid="stepup-summary">
        <p className="stepup-what">{summary.title}</p>
        {summary.details && summary.details.length > 0 && (
          <dl>{summary.details.map(([k, v]) => (<div key={k}><dt>{k}</dt><dd>{v}</dd></div>))}</dl>
        )}
        {challenge && challenge.summary !== summary.title && <p className="muted" data-testid="stepup-server-summary">Server: {challenge.summary}</p>}
      </div>

      {state.phase === 'loading' && <p className="muted">Preparing confirmation…</p>}
      {state.phase === 'done' && <p role="status" data-testid="stepup-done">Confirmed.</p>}

      {problem && (
        <div role="alert" className="error" data-testid="stepup-error" data-kind={problem.kind}>
          <strong>{problem.title}.</strong> {problem.message}
          {problem.next === 'enroll' && onEnroll && <> <button type="button" onClick={onEnroll}>Set up now</button></>}
        </div>
      )}

      {state.phase === 'blocked' && (
        <div role="alert" className="error" data-testid="stepup-error" data-kind={state.explanation.kind}>
          <strong>{state.explanation.title}.</strong> {state.explanation.message}
          {state.explanation.next === 'enroll' && onEnroll && <> <button type="button" onClick={onEnroll}>Set up now</button></>}
          {state.explanation.next !== 'enroll' && <> <button type="button" onClick={() => void loadChallenge()}>Try again</button></>}
        </div>
      )}

      {challenge && (
        <>
          <p className="muted">Expires at {clockTime(challenge.expiresAt)}.</p>
          {challenge.methods.includes('webauthn') && (
            <button type="button" className="primary" data-testid="stepup-passkey" disabled={state.phase === 'working'} onClick={() => void confirmWithPasskey(challenge)}>
              {state.phase === 'working' && state.what === 'webauthn' ? 'Waiting for your authenticator…' : 'Confirm with passkey or security key'}
            </button>
          )}
          {challenge.methods.includes('totp') && (
            <form onSubmit={(e) => void submitCode(e, challenge)} data-testid="stepup-totp">
              <label htmlFor="stepup-code">{challenge.methods.includes('webauthn') ? 'Or type a code from your authenticator app' : 'Code from your authenticator app'}</label>
              <input id="stepup-code" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6}" maxLength={6} value={code}
                disabled={state.phase === 'working' || Boolean(locked)} onChange={(e) => setCode(e.target.value.replace(/\D/g, ''))} />
              <button type="submit" disabled={state.phase === 'working' || Boolean(locked)}>Confirm with code</button>
              {locked && <p className="muted" data-testid="stepup-locked">Codes are locked until {clockTime(locked)}.</p>}
            </form>
          )}
          {!challenge.methods.includes('totp') && challenge.policyMethods.length === 1 && challenge.policyMethods[0] === 'webauthn' && (
            <p className="muted">This action accepts a passkey or security key only.</p>
          )}
        </>
      )}
      {onCancel && state.phase !== 'done' && <button type="button" onClick={onCancel}>Cancel</button>}
    </section>
  );
}
