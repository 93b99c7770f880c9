// A modal dialog on the native <dialog>: the browser traps focus inside and Esc cancels it. Focus goes back to
// whatever was focused before it opened, even when that element was re-rendered meanwhile (matched by id).
import { useId, useLayoutEffect, useRef, type ReactNode } from 'react';

export function Dialog({ title, labelledBy, description, onClose, children, className }: {
  /** Shown as the dialog's heading; or pass `labelledBy` when the content brings its own heading. */
  title?: string;
  labelledBy?: string;
  description?: ReactNode;
  onClose: () => void;
  children: ReactNode;
  className?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const descriptionId = useId();
  const onCloseRef = useRef(onClose);
  onCloseRef.current = onClose;

  useLayoutEffect(() => {
    const dialog = ref.current!;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const openerId = opener?.id;
    if (!dialog.open) dialog.showModal();
    const focusFirst = dialog.querySelector<HTMLElement>('[data-autofocus]');
    focusFirst?.focus();
    return () => {
      if (dialog.open) dialog.close();
      const back = opener?.isConnected ? opener : openerId ? document.getElementById(openerId) : null;
      // After the dialog leaves the DOM, so the browser does not move focus again afterwards.
      queueMicrotask(() => back?.focus());
    };
  }, []);

  return (
    <dialog
      ref={ref}
      className={`dialog ${className ?? ''}`}
      aria-labelledby={labelledBy ?? titleId}
      aria-describedby={description ? descriptionId : undefined}
      onCancel={(event) => {
        event.preventDefault();
        onCloseRef.current();
      }}
    >
      {title && <h2 id={titleId} className="dialog-title">{title}</h2>}
      {description && <div id={descriptionId} className="dialog-description">{description}</div>}
      {children}
    </dialog>
  );
}
