// Labelled form controls with their error text wired up for assistive technology (aria-invalid + describedby).
import { useId, type ReactNode } from 'react';

export function Field({ id: fixedId, label, hint, error, children }: {
  id?: string;
  label: string;
  hint?: string;
  error?: string;
  children: (ids: { id: string; describedBy?: string; invalid: boolean }) => ReactNode;
}) {
  const generated = useId();
  const id = fixedId ?? generated;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : '', error ? errorId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, describedBy, invalid: Boolean(error) })}
      {hint && <p id={hintId} className="hint">{hint}</p>}
      {error && <p id={errorId} className="field-error">{error}</p>}
    </div>
  );
}

/** A row of mutually exclusive choices; each is its own Tab stop and chosen with Enter or Space. */
export function ChoiceButtons<T extends string | number>({ legend, choices, value, onChange, name }: {
  legend: string;
  name: string;
  choices: { value: T; label: string }[];
  value: T;
  onChange: (value: T) => void;
}) {
  return (
    <fieldset className="choices">
      <legend>{legend}</legend>
      <div className="choice-row">
        {choices.map((choice) => (
          <button
            key={String(choice.value)}
            type="button"
            name={name}
            className="choice"
            aria-pressed={choice.value === value}
            onClick={() => onChange(choice.value)}
          >
            {choice.label}
          </button>
        ))}
      </div>
    </fieldset>
  );
}
