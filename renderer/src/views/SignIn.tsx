import { useState } from 'react';
import { useApp } from '../context';
import { errorCode, errorMessage } from '../useAgent';
import type { AgentCallError } from '../agent/client';

export function SignIn() {
  const { client, state } = useApp();
  const [error, setError] = useState<string>();
  const session = state.session;
  const host = hostOf(state.server.url);

  const signIn = async () => {
    setError(undefined);
    try {
      await client.call('signIn', {});
    } catch (e) {
      // Cancelling is the user's own choice, not an error to report.
      if (errorCode(e as AgentCallError) !== 'login_cancelled') setError(errorMessage(e));
    }
  };
  const cancel = async () => {
    try {
      await client.call('cancelSignIn', {});
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  return (
    <section className="view signin" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Sign in</h2>
      {session.status === 'signing_in' ? (
        <>
          <p className="lead" role="status">Finish signing in in your browser…</p>
          <p className="muted">A browser window opened at your company’s sign-in page. Come back here when you’re done.</p>
          {session.authorizationUrl && (
            <p className="muted">No browser window? <a href={session.authorizationUrl} target="_blank" rel="noopener noreferrer">Open the sign-in page</a>.</p>
          )}
          <div className="actions">
            <button type="button" onClick={cancel}>Cancel sign-in</button>
          </div>
        </>
      ) : (
        <>
          <p className="lead">Sign in to {host} to ask for access to databases and hosts.</p>
          {session.status === 'signed_out' && session.message && <p className="notice">{session.message}</p>}
          {session.status === 'signed_out' && session.endSessionUrl && (
            <p className="muted">Signed out of Stint. <a href={session.endSessionUrl} target="_blank" rel="noopener noreferrer">Sign out of your company’s sign-in service too</a> (on a shared computer).</p>
          )}
          <div className="actions">
            <button type="button" className="primary" onClick={signIn}>Sign in</button>
          </div>
          <p className="muted">Your browser opens your company’s sign-in page. Wrong server? Change it in Settings.</p>
        </>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url || 'your Stint server';
  }
}
