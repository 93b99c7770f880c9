// How to use an open tunnel: the client command to paste (psql, … : it names the grant's client file, so no password is typed and
// none is on the clipboard), what a GUI client needs, and the password itself only on an explicit, audited reveal
// that hides again when the access ends. Copying goes through the browser's Clipboard API (the web host has no
// other clipboard); where that is refused, the text is selected for the user to copy by hand.
import { useEffect, useRef, useState } from 'react';
import type { LocalGrant } from '../../../shared/contract/agent';
import { kindWords } from '../../../shared/domain/kinds';
import { useApp } from '../context';

/** Copy `text`; false when the browser refused (permission, no secure context, no focus). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function selectContents(element: HTMLElement | null): void {
  if (!element) return;
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection?.removeAllRanges();
  selection?.addRange(range);
}

export function ConnectionDetails({ local, name }: { local: LocalGrant; name: string }) {
  const { run, toast } = useApp();
  const tunnel = local.tunnel;
  const { client, password: hasPassword } = kindWords(local.grant.kind);
  const commandRef = useRef<HTMLElement>(null);
  const [copyRefused, setCopyRefused] = useState(false);
  const [password, setPassword] = useState<{ value: string; endsAt: number } | undefined>();
  // The revealed password disappears when the access ends (it stops working then anyway).
  useEffect(() => {
    if (!password) return;
    const timer = setTimeout(() => setPassword(undefined), Math.max(0, password.endsAt - Date.now()));
    return () => clearTimeout(timer);
  }, [password]);
  if (!tunnel || tunnel.status !== 'open') return null;

  return (
    <div className="connection" aria-label={`How to connect to ${name}`}>
      {tunnel.command && (
        <>
          <p className="connection-label">Run in a terminal{hasPassword ? ' (no password to type)' : ''}:</p>
          <pre className="command"><code ref={commandRef} aria-label={`${client} command for ${name}`}>{tunnel.command}</code></pre>
          <div className="actions">
            <button type="button" className="primary" aria-label={`Copy ${client} command for ${name}`}
              onClick={async () => {
                if (await copyText(tunnel.command!)) {
                  setCopyRefused(false);
                  toast({ title: `${client} command copied`, body: 'Paste it into a terminal on this computer. It holds no password.', tone: 'ok' });
                } else {
                  setCopyRefused(true);
                  selectContents(commandRef.current);
                }
              }}>Copy {client} command</button>
          </div>
          {copyRefused && <p className="notice" role="status">This browser did not let Stint use the clipboard. The command above is selected: copy it with Ctrl+C (⌘C on a Mac).</p>}
        </>
      )}
      <dl className="connection-fields">
        <dt>Host</dt><dd>{tunnel.host}</dd>
        <dt>Port</dt><dd>{tunnel.port}</dd>
        {tunnel.database && <><dt>Database</dt><dd>{tunnel.database}</dd></>}
        {tunnel.user && <><dt>User</dt><dd>{tunnel.user}</dd></>}
        {hasPassword && <><dt>Password</dt>
        <dd>
          {password ? (
            <code aria-label={`Password for ${name}`}>{password.value}</code>
          ) : (
            <button type="button" className="link" aria-label={`Reveal the password for ${name}`}
              onClick={async () => {
                const out = await run('revealPassword', { grantId: local.grant.id });
                if (out) setPassword({ value: out.password, endsAt: Date.parse(out.endsAt) });
              }}>Reveal (recorded in the audit log)</button>
          )}
        </dd></>}
      </dl>
    </div>
  );
}
