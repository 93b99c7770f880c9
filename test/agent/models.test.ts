import { describe, it, expect } from 'vitest';
import { formatCountdown, countdownChangesInMs } from '../../shared/domain/countdown';
import { formatDuration } from '../../shared/domain/duration';
import { trayModel, notificationsFor, type TrayMenuItem } from '../../agent/core/models';
import { T0, iso, resource, request, grant, local, state } from './builders';

const MIN = 60_000;
const labels = (items: TrayMenuItem[]) => items.map((i) => (i.kind === 'separator' ? '---' : i.label));
const find = (items: TrayMenuItem[], prefix: string) => items.find((i) => i.kind !== 'separator' && i.label.startsWith(prefix)) as Extract<TrayMenuItem, { kind: 'item' }>;

describe('countdown', () => {
  it('reads the same everywhere: 42m, 1h 05m, 0:59, never 0 while time remains', () => {
    expect(formatCountdown(42 * MIN)).toBe('42m');
    expect(formatCountdown(41 * MIN + 1)).toBe('42m');
    expect(formatCountdown(65 * MIN)).toBe('1h 05m');
    expect(formatCountdown(3 * 3600_000 + 10 * MIN)).toBe('3h 10m');
    expect(formatCountdown(MIN)).toBe('1m');
    expect(formatCountdown(59_000)).toBe('0:59');
    expect(formatCountdown(1)).toBe('0:01');
    expect(formatCountdown(0)).toBe('0:00');
    expect(formatCountdown(-5)).toBe('0:00');
    expect(formatCountdown(50 * 3600_000)).toBe('2d 02h');
  });

  it('says when the text next changes, so the tray redraws without polling', () => {
    for (const ms of [42 * MIN + 30_000, 65 * MIN, 61_000, 59_500, 3 * 24 * 3600_000 + 5]) {
      const wait = countdownChangesInMs(ms);
      expect(formatCountdown(ms - wait + 1)).toBe(formatCountdown(ms));
      expect(formatCountdown(ms - wait)).not.toBe(formatCountdown(ms));
    }
    expect(formatDuration(3600)).toBe('1h');
    expect(formatDuration(5400)).toBe('1h 30m');
    expect(formatDuration(900)).toBe('15m');
  });
});

describe('trayModel', () => {
  const resources = [
    resource('staging-users', 'staging'),
    resource('prod-orders', 'production', { autoApprove: false, approvals: [{ group: 'dba', count: 1 }] }),
    resource('prod-billing', 'production', { stepUp: { request: 'always', approve: 'always', methods: ['webauthn'] } }),
  ];

  it('signed out: struck icon, a sign-in item, no request menu', () => {
    const model = trayModel(state({ session: { status: 'signed_out' }, resources }), T0);
    expect(model.icon).toBe('offline');
    expect(model.tooltip).toBe('Stint — signed out');
    expect(labels(model.menu)).toEqual(['Signed out', 'Sign in…', '---', 'Open Stint…', 'Settings…', 'Quit']);
  });

  it('idle: outline icon, resources grouped by environment (production first) with what a click leads to', () => {
    const model = trayModel(state({ resources }), T0);
    expect(model.icon).toBe('idle');
    expect(model.title).toBe('');
    expect(model.menu[0]).toEqual({ kind: 'label', label: 'Signed in as alice@example.com — stint.example.com' });
    const request = find(model.menu, 'Request access');
    expect(labels(request.submenu!)).toEqual(['Production', 'Staging']);
    const prod = request.submenu![0] as Extract<TrayMenuItem, { kind: 'item' }>;
    expect(labels(prod.submenu!)).toEqual(['prod-orders (needs approval)', 'prod-billing (step-up)']);
    expect((prod.submenu![0] as any).action).toEqual({ type: 'open', view: 'request', params: { resourceId: 'prod-orders' } });
    expect(labels((request.submenu![1] as any).submenu)).toEqual(['staging-users (instant)']);
    expect(model.refreshAfterMs).toBeUndefined();
  });

  it('active grants: filled icon, soonest countdown as title, tooltip lists each, actions per grant', () => {
    const s = state({
      resources,
      // In the order the agent publishes them: soonest end first.
      grants: [
        local(grant('g1', T0 + 42 * MIN), { tunnel: { status: 'open', host: '127.0.0.1', port: 15433, preferredPort: 15432, message: 'Port 15432 is in use by another program — using 15433 for this grant.', connections: 0 } }),
        local(grant('g2', T0 + 3 * 3600_000 + 10 * MIN, { resourceId: 'staging-users', level: 'read' })),
      ],
    });
    const model = trayModel(s, T0);
    expect(model.icon).toBe('active');
    expect(model.title).toBe('42m');
    expect(model.tooltip).toBe('Stint — prod-orders (write) 42m left · staging-users (read) 3h 10m left');
    expect(labels(model.menu).slice(1, 5)).toEqual(['---', 'Active', 'prod-orders · write · 42m left', 'staging-users · read · 3h 10m left']);
    const g1 = find(model.menu, 'prod-orders · write');
    expect(labels(g1.submenu!)).toEqual(['Port 15432 is in use by another program — using 15433 for this grant.', 'Open in psql', 'Copy connection URI', 'Extend…', 'End now']);
    expect(labels(find(model.menu, 'staging-users · read').submenu!)).toEqual(['Connect', 'Extend…', 'End now']);
    expect(model.refreshAfterMs).toBe(MIN);
    // In the last minute the title counts seconds and asks to be redrawn each second.
    const late = trayModel(s, T0 + 41 * MIN + 1_000);
    expect(late.title).toBe('0:59');
    expect(late.refreshAfterMs).toBe(1_000);
    // Past the local deadline by this clock it reads 0:00 and asks for no redraw: the agent publishes the end.
    const over = trayModel(s, T0 + 43 * MIN);
    expect(over.title).toBe('0:00');
    expect(over.refreshAfterMs).toBe(MIN);
    // Once the agent says it ended (its phase), it is gone from the menu, even before the server says so.
    const ended = state({ resources, grants: [s.grants[1]!, { ...s.grants[0]!, localState: 'ended', phase: 'ended' }] });
    expect(trayModel(ended, T0 + 43 * MIN).tooltip).toBe('Stint — staging-users (read) 2h 27m left');
  });

  it('a grant left from before (Stint stopped while it was active): the "needs you" dot, Resume and End', () => {
    const s = state({
      resources,
      grants: [
        local(grant('g1', T0 + 40 * MIN), { leftFromBefore: true }),
        local(grant('g2', T0 + 3 * 3600_000, { resourceId: 'staging-users', level: 'read' })),
      ],
    });
    const model = trayModel(s, T0);
    expect(model.icon).toBe('needs_you');
    expect(model.title).toBe('40m');
    expect(labels(model.menu).slice(1, 5)).toEqual(['---', 'Active', 'prod-orders · write · 40m left · stopped', 'staging-users · read · 3h 00m left']);
    expect(find(model.menu, 'prod-orders · write').submenu).toEqual([
      { kind: 'label', label: 'Stint stopped while this access was active' },
      // Straight from the menu; where the server asks for a step-up first, the window where the user can give one.
      { kind: 'item', label: 'Resume', action: { type: 'call', method: 'resumeGrant', input: { grantId: 'g1' }, onStepUp: { type: 'open', view: 'resume', params: { grantId: 'g1', requestId: 'r-g1' } } } },
      { kind: 'item', label: 'End', action: { type: 'call', method: 'release', input: { grantId: 'g1' } } },
    ]);
    expect(labels(find(model.menu, 'staging-users · read').submenu!)).toEqual(['Connect', 'Extend…', 'End now']);
    // Resumed: an ordinary active grant again.
    const resumed = state({ resources, grants: [local(grant('g1', T0 + 40 * MIN))] });
    expect(trayModel(resumed, T0).icon).toBe('active');
  });

  it('waiting for approval and approvals asked of me: clock icon, then the "needs you" dot', () => {
    const waiting = state({ resources, requests: [request('r1')] });
    const model = trayModel(waiting, T0);
    expect(model.icon).toBe('waiting');
    const item = find(model.menu, 'prod-orders · write');
    expect(item.label).toBe('prod-orders · write · 1 of 2 approvals');
    expect(item.submenu).toEqual([{ kind: 'item', label: 'Cancel request', action: { type: 'call', method: 'cancelRequest', input: { requestId: 'r1' } } }]);

    const asked = state({ resources, requests: [request('r1')], approvals: [request('r9', { requester: 'bob', requesterName: 'bob' })] });
    const m2 = trayModel(asked, T0);
    expect(m2.icon).toBe('needs_you');
    expect(labels(m2.menu)).toContain('Needs you (1)');
    const ask = find(m2.menu, 'bob →');
    expect(ask.label).toBe('bob → prod-orders · write · "INC-4512 fix stuck orders"');
    expect(labels(ask.submenu!)).toEqual(['Approve…', 'Deny…']);
  });

  it('offline: struck icon and a plain-words note that access still ends on time', () => {
    const model = trayModel(state({ server: { url: 'https://stint.example.com', status: 'offline', clockOffsetMs: 0 }, grants: [local(grant('g1', T0 + 42 * MIN))] }), T0);
    expect(model.icon).toBe('offline');
    expect(labels(model.menu)).toContain('The server can\'t be reached — your active access still ends on time.');
    expect(model.title).toBe('42m');
  });
});

describe('notificationsFor', () => {
  const resources = [resource('prod-orders', 'production')];
  it('approval asked of me, with approve/deny/open, once', () => {
    const prev = state({ resources });
    const next = state({ resources, approvals: [request('r9', { requester: 'bob', durationSeconds: 3600 })] });
    expect(notificationsFor(prev, next, T0)).toEqual([{
      id: 'approval_asked:r9', kind: 'approval_asked', title: 'Approval asked',
      body: 'bob wants write on prod-orders for 1h — INC-4512 fix stuck orders', actions: ['approve', 'deny', 'open'], requestId: 'r9',
    }]);
    expect(notificationsFor(next, next, T0)).toEqual([]);
  });

  it('my request approved (with the local address once the tunnel is open) or denied with the reason', () => {
    const prev = state({ resources, requests: [request('r1'), request('r2')] });
    const g = local(grant('g1', T0 + 3600_000, { requestId: 'r1' }), { tunnel: { status: 'open', host: '127.0.0.1', port: 15432, connections: 0 } });
    const next = state({
      resources,
      requests: [request('r1', { state: 'approved', grantId: 'g1' }), request('r2', { state: 'denied', decisionReason: 'use the read replica' })],
      grants: [g],
    });
    const out = notificationsFor(prev, next, T0);
    expect(out.map((n) => [n.kind, n.body, n.actions])).toEqual([
      ['approved', 'prod-orders is ready — 127.0.0.1:15432, 1h', ['open_psql', 'copy_uri']],
      ['denied', 'prod-orders was denied: use the read replica', ['open']],
    ]);
  });

  it('expiring with extend, ended (not when I ended it myself), revoked with the reason', () => {
    const g1 = grant('g1', T0 + 10 * MIN);
    const prev = state({ resources, grants: [local(g1), local(grant('g2', T0 + MIN)), local(grant('g3', T0 + MIN)), local(grant('g4', T0 + MIN))] });
    const next = state({
      resources,
      grants: [
        local(g1, { warnedMinutes: 5 }),
        local(grant('g2', T0 + MIN, { state: 'ended' }), { localState: 'ended' }),
        local(grant('g3', T0 + MIN, { state: 'released' }), { localState: 'ended' }),
        local(grant('g4', T0 + MIN, { state: 'revoked', endReason: 'incident closed' }), { localState: 'ended' }),
      ],
    });
    const out = notificationsFor(prev, next, T0 + 5 * MIN);
    expect(out.map((n) => [n.id, n.body, n.actions])).toEqual([
      ['expiring:g1', 'prod-orders ends in 5 minutes', ['extend']],
      ['ended:g2', 'prod-orders access ended — tunnel closed, credentials wiped', []],
      ['revoked:g4', 'prod-orders access was revoked: incident closed', []],
    ]);
    // Access ended locally while the server still says "active" (offline): still "ended".
    const offline = state({ resources, grants: [local(g1, { localState: 'ended', localEndsAt: iso(T0 + 10 * MIN) })] });
    expect(notificationsFor(prev, offline, T0 + 10 * MIN).map((n) => n.kind)).toEqual(['ended']);
  });

  it('nothing on the first snapshot or when signed out', () => {
    expect(notificationsFor(undefined, state({ approvals: [request('r9')] }), T0)).toEqual([]);
  });
});
