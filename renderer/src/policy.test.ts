import { describe, expect, it } from 'vitest';
import type { PolicySummary } from '../../shared/contract/http';
import { approverText, durationChoices, extendChoices, primaryActionLabel, resourceHints, ticketProblem } from './policy';
import { routeFrom } from './route';

const base: PolicySummary = {
  policyId: 'p', policyVersion: 1, durationDefaultSeconds: 3600, durationMaxSeconds: 4 * 3600, reasonRequired: false,
  ticketRequired: false, approvals: [], autoApprove: true, stepUp: { request: 'never', approve: 'never', methods: ['webauthn'] },
  breakGlass: false, extend: { maxTotalSeconds: 8 * 3600, reapproval: false },
};

describe('request form policy', () => {
  it('labels the one primary button with what will happen', () => {
    expect(primaryActionLabel(base)).toBe('Connect now');
    expect(primaryActionLabel({ ...base, stepUp: { ...base.stepUp, request: 'always' } })).toBe('Verify and connect');
    const approval = { ...base, autoApprove: false, approvals: [{ group: 'dba', count: 1 }, { group: 'sre-leads', count: 2 }] };
    expect(primaryActionLabel(approval)).toBe('Ask dba and 2 of sre-leads');
    expect(primaryActionLabel({ ...approval, stepUp: { ...base.stepUp, request: 'always' } })).toBe('Verify and ask dba and 2 of sre-leads');
    // Auto-approve when low risk: the server may still ask people, but the likely outcome is shown.
    expect(primaryActionLabel({ ...approval, autoApprove: true })).toBe('Connect now');
  });

  it('offers 15m / 1h / 4h clipped to the maximum, the default selected', () => {
    expect(durationChoices(base)).toEqual({ choices: [{ seconds: 900, label: '15m' }, { seconds: 3600, label: '1h' }, { seconds: 14400, label: '4h' }], initial: 3600 });
    expect(durationChoices({ ...base, durationDefaultSeconds: 1800, durationMaxSeconds: 2 * 3600 }).choices.map((c) => c.label)).toEqual(['15m', '30m', '1h']);
    expect(durationChoices({ ...base, durationDefaultSeconds: 600, durationMaxSeconds: 600 })).toEqual({ choices: [{ seconds: 600, label: '10m' }], initial: 600 });
    // The user's default wins when policy allows it, and is ignored when it does not.
    expect(durationChoices(base, 900).initial).toBe(900);
    expect(durationChoices({ ...base, durationMaxSeconds: 3600 }, 4 * 3600).initial).toBe(3600);
  });

  it('checks the ticket against the policy pattern, never blocking on a broken pattern', () => {
    const p = { ...base, ticketPattern: '^INC-[0-9]+$' };
    expect(ticketProblem(p, 'INC-42')).toBeUndefined();
    expect(ticketProblem(p, '42')).toMatch(/doesn’t look like a ticket/);
    expect(ticketProblem(p, '')).toBeUndefined();
    expect(ticketProblem({ ...p, ticketRequired: true }, ' ')).toBe('Enter the ticket this work is for.');
    expect(ticketProblem({ ...base, ticketPattern: '([' }, 'anything')).toBeUndefined();
  });

  it('hints what a resource needs', () => {
    expect(resourceHints(base)).toEqual(['instant']);
    expect(resourceHints({ ...base, autoApprove: false, approvals: [{ group: 'dba', count: 1 }], stepUp: { ...base.stepUp, request: 'always' } })).toEqual(['needs approval', 'step-up']);
    expect(approverText([{ group: 'a', count: 1 }, { group: 'b', count: 1 }, { group: 'c', count: 3 }])).toBe('a, b and 3 of c');
  });

  it('extends only within the total the policy allows', () => {
    expect(extendChoices(base, 3600).map((c) => c.label)).toEqual(['15m', '1h', '4h']);
    expect(extendChoices(base, 7.5 * 3600).map((c) => c.label)).toEqual(['15m']);
    expect(extendChoices(base, 8 * 3600 - 600).map((c) => c.label)).toEqual(['10m']);
    expect(extendChoices(base, 8 * 3600)).toEqual([]);
  });
});

describe('routeFrom (tray and deep links)', () => {
  const views = ['active', 'waiting', 'resources', 'approvals', 'history', 'settings', 'signin'] as const;
  it('opens the tray’s dialog views with their params', () => {
    expect(routeFrom('?view=request&resourceId=prod-orders', views)).toEqual({ view: 'resources', dialog: { kind: 'request', resourceId: 'prod-orders' } });
    expect(routeFrom('?view=approve&requestId=r1', views)).toEqual({ view: 'approvals', dialog: { kind: 'approve', requestId: 'r1' } });
    expect(routeFrom('?view=deny&requestId=r1', views)).toEqual({ view: 'approvals', dialog: { kind: 'deny', requestId: 'r1' } });
    expect(routeFrom('?view=stepup&requestId=r1', views)).toEqual({ view: 'waiting', dialog: { kind: 'stepup', action: 'request', requestId: 'r1' } });
    expect(routeFrom('?view=extend&grantId=g1', views)).toEqual({ view: 'active', dialog: { kind: 'extend', grantId: 'g1' } });
    expect(routeFrom('?view=resume&grantId=g1&requestId=r1', views)).toEqual({ view: 'active', dialog: { kind: 'stepup', action: 'resume', requestId: 'r1', grantId: 'g1' } });
    expect(routeFrom('?view=settings', views)).toEqual({ view: 'settings' });
  });
  it('ignores what it does not know', () => {
    expect(routeFrom('?view=main', views)).toEqual({});
    expect(routeFrom('?view=request', views)).toEqual({});
    expect(routeFrom('?view=resume&grantId=g1', views)).toEqual({});
    expect(routeFrom('?view=evil', views)).toEqual({});
    expect(routeFrom('', views)).toEqual({});
  });
});
