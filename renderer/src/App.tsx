import { useEffect, useState } from 'react';

type Connection = { state: 'connecting' } | { state: 'unavailable'; message: string } | { state: 'ready' };

/** The agent is reached only through `window.stint` (Electron preload) or the web host's bridge. */
function agentAvailable(): boolean {
  return typeof (window as { stint?: unknown }).stint === 'object';
}

export function App() {
  const [connection, setConnection] = useState<Connection>({ state: 'connecting' });
  useEffect(() => {
    setConnection(agentAvailable()
      ? { state: 'ready' }
      : { state: 'unavailable', message: 'Stint can’t reach its agent. Start Stint with `npm start` and open the link it prints.' });
  }, []);
  return (
    <main>
      <h1>Stint</h1>
      {connection.state === 'connecting' && <p className="muted">Connecting to the agent…</p>}
      {connection.state === 'unavailable' && <p role="alert" className="error">{connection.message}</p>}
      {connection.state === 'ready' && <p>Agent connected.</p>}
    </main>
  );
}
