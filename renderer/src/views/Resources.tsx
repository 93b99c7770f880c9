import { useMemo, useState } from 'react';
import type { Resource } from '../../../shared/contract/http';
import { kindWords } from '../../../shared/domain/kinds';
import { useApp } from '../context';
import { approverText, needsApproval, resourceHints } from '../policy';

/** Production first, then the rest alphabetically: the order people look for. */
function environmentOrder(a: string, b: string): number {
  const rank = (e: string) => (/^prod/i.test(e) ? 0 : 1);
  return rank(a) - rank(b) || a.localeCompare(b);
}

export function environmentTitle(environment: string): string {
  return environment.charAt(0).toUpperCase() + environment.slice(1);
}

export function Resources() {
  const { state, open } = useApp();
  const [query, setQuery] = useState('');
  const groups = useMemo(() => {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    const matches = state.resources.filter((r) => {
      const text = `${r.name} ${r.id} ${r.environment} ${r.sensitivity} ${r.levels.join(' ')}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
    const byEnv = new Map<string, Resource[]>();
    for (const r of matches) byEnv.set(r.environment, [...(byEnv.get(r.environment) ?? []), r]);
    return [...byEnv.entries()].sort(([a], [b]) => environmentOrder(a, b))
      .map(([environment, list]) => ({ environment, list: list.sort((a, b) => a.name.localeCompare(b.name)) }));
  }, [state.resources, query]);
  const count = groups.reduce((n, g) => n + g.list.length, 0);

  return (
    <section className="view" aria-labelledby="view-title">
      <h2 id="view-title" tabIndex={-1}>Request access</h2>
      <div className="search">
        <label htmlFor="resource-search">Search resources</label>
        <input
          id="resource-search"
          type="search"
          value={query}
          placeholder="Name, environment or level"
          onChange={(e) => setQuery(e.target.value)}
          aria-describedby="resource-count"
        />
        <p id="resource-count" className="muted" aria-live="polite">
          {state.resources.length === 0 ? 'Nothing is available for you to request yet.' : `${count} of ${state.resources.length} shown`}
        </p>
      </div>
      {groups.map(({ environment, list }) => (
        <section key={environment} className="group" aria-labelledby={`env-${environment}`}>
          <h3 id={`env-${environment}`}>{environmentTitle(environment)}</h3>
          <ul className="resource-list">
            {list.map((r) => (
              <li key={r.id} className="resource card">
                <div className="resource-main">
                  <button
                    type="button"
                    id={`request-${r.id}`}
                    className="link-button resource-name"
                    aria-describedby={`about-${r.id}`}
                    onClick={() => open({ kind: 'request', resourceId: r.id })}
                  >
                    {r.name}
                  </button>
                  <span className={`badge kind-${r.kind}`}>{kindWords(r.kind).name}</span>
                  <span className={`badge sensitivity-${r.sensitivity}`}>{r.sensitivity} sensitivity</span>
                </div>
                <p id={`about-${r.id}`} className="resource-about">
                  <span className="levels">{r.levels.join(' · ')}</span>
                  {resourceHints(r.policy).map((hint) => <span key={hint} className={`hint-chip hint-${hint.replace(/\s+/g, '-')}`}>{hint}</span>)}
                  {needsApproval(r.policy) && <span className="muted">from {approverText(r.policy.approvals)}</span>}
                </p>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </section>
  );
}
