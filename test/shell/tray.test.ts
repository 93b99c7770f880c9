// The tray controller under Node: a recording fake Tray and Menu builder, the fake clock from the agent tests.
// What a user would notice: the menu does not flicker/rebuild every second, the countdown is right, one timer.
import { formatCountdownMinutes } from '../../shared/domain/countdown';
import { describe, expect, it } from 'vitest';
import type { MenuItemConstructorOptions } from 'electron';
import { FakeClock } from '../../dev/fake-clock';
import { T0, grant, local, request, resource, state } from '../agent/builders';
import type { TrayAction } from '../../agent/core/models';
import { TrayController, trayDispatcher, trayIconPath, type ShellToggle } from '../../desktop/main/tray';
import type { AgentState } from '../../shared/contract/agent';
import { AgentError } from '../../agent/core/errors';

const MIN = 60_000;

function setup(platform: NodeJS.Platform, toggles: ShellToggle[] = []) {
  const clock = new FakeClock(T0);
  const calls: Array<[string, unknown]> = [];
  const menus: MenuItemConstructorOptions[][] = [];
  const dispatched: TrayAction[] = [];
  const tray = {
    setImage: (image: string) => void calls.push(['image', image]),
    setTitle: (title: string) => void calls.push(['title', title]),
    setToolTip: (tip: string) => void calls.push(['tooltip', tip]),
    setContextMenu: (menu: unknown) => void calls.push(['menu', menu]),
  };
  const menu = { buildFromTemplate: (template: MenuItemConstructorOptions[]) => { menus.push(template); return { template }; } };
  const controller = new TrayController({ tray, menu, platform, iconDir: '/app/tray', clock, dispatch: (a) => void dispatched.push(a), toggles });
  const of = (kind: string) => calls.filter(([k]) => k === kind).map(([, v]) => v);
  return { clock, controller, calls, menus, dispatched, of };
}

const resources = [resource('prod-orders', 'production'), resource('staging-users', 'staging')];
const withGrant = (msLeft: number, extra: Partial<AgentState> = {}) => state({
  resources,
  grants: [local(grant('g1', T0 + msLeft), { tunnel: { status: 'open', host: '127.0.0.1', port: 15432, connections: 0 } })],
  ...extra,
});
const labels = (template: MenuItemConstructorOptions[]) => template.map((i) => (i.type === 'separator' ? '---' : i.label));
const grantLabel = (template: MenuItemConstructorOptions[]) => labels(template).find((l) => l?.startsWith('prod-orders · write'));

describe('tray menu refresh cadence', () => {
  it('does not rebuild the menu while only seconds pass within a minute, and rebuilds when the minute text changes', () => {
    const t = setup('linux');
    t.controller.update(withGrant(42 * MIN + 30_000));
    expect(t.menus).toHaveLength(1);
    expect(grantLabel(t.menus[0]!)).toBe('prod-orders · write · 43m left');
    expect(t.clock.pendingTimers()).toBe(1);

    // The same state again (e.g. a server event that changed nothing visible), 10 s later: no rebuild.
    t.clock.advance(10_000);
    t.controller.update(withGrant(42 * MIN + 30_000));
    expect(t.menus).toHaveLength(1);
    expect(t.clock.pendingTimers()).toBe(1);

    // The timer fires exactly when "43m" becomes "42m".
    t.clock.advance(20_000 - 1);
    expect(t.menus).toHaveLength(1);
    t.clock.advance(1);
    expect(t.menus).toHaveLength(2);
    expect(grantLabel(t.menus[1]!)).toBe('prod-orders · write · 42m left');
    expect(t.clock.pendingTimers()).toBe(1);

    // Ten minutes: ten rebuilds, never more, and still one pending timer.
    t.clock.advance(10 * MIN);
    expect(t.menus).toHaveLength(12);
    expect(grantLabel(t.menus[11]!)).toBe('prod-orders · write · 32m left');
    expect(t.clock.pendingTimers()).toBe(1);
    expect(t.of('tooltip').at(-1)).toBe('Stint — prod-orders (write) 32m left');
  });

  it('macOS: the title counts seconds in the last minute while the menu stays at minute granularity', () => {
    const t = setup('darwin');
    t.controller.update(withGrant(MIN + 5_000));
    expect(t.of('title')).toEqual(['2m']);
    t.clock.advance(5_000);
    expect(t.of('title')).toEqual(['2m', '1m']);
    const menusBefore = t.menus.length;
    t.clock.advance(1_000);
    t.clock.advance(1_000);
    expect(t.of('title').slice(-2)).toEqual(['0:59', '0:58']);
    t.clock.advance(30_000);
    expect(t.of('title').at(-1)).toBe('0:28');
    // 32 title updates, not one menu rebuild: the last minute reads "1m left" in the menu.
    expect(t.menus.length).toBe(menusBefore);
    expect(grantLabel(t.menus.at(-1)!)).toBe('prod-orders · write · 1m left');
    expect(t.of('tooltip').at(-1)).toBe('Stint — prod-orders (write) 1m left');
    expect(t.clock.pendingTimers()).toBe(1);
  });

  it('elsewhere: no title, and no timer ticking through the last minute', () => {
    const t = setup('win32');
    t.controller.update(withGrant(MIN + 5_000));
    expect(t.of('title')).toEqual([]);
    t.clock.advance(5_000);
    expect(t.of('tooltip').at(-1)).toBe('Stint — prod-orders (write) 1m left');
    const rendersBefore = t.calls.length;
    t.clock.advance(59_000);
    expect(t.calls.length).toBe(rendersBefore); // nothing changed, nothing set
  });

  it('no grants: no timer at all', () => {
    const t = setup('linux');
    t.controller.update(state({ resources }));
    expect(t.clock.pendingTimers()).toBe(0);
    t.controller.update(withGrant(5 * MIN));
    expect(t.clock.pendingTimers()).toBe(1);
    t.controller.update(state({ resources }));
    expect(t.clock.pendingTimers()).toBe(0);
  });

  it('dispose cancels the timer and ignores later states', () => {
    const t = setup('linux');
    t.controller.update(withGrant(5 * MIN));
    t.controller.dispose();
    expect(t.clock.pendingTimers()).toBe(0);
    const before = t.calls.length;
    t.controller.update(state());
    expect(t.calls.length).toBe(before);
  });
});

describe('tray icon, title and tooltip per platform', () => {
  it.each([
    ['darwin', '/app/tray/activeTemplate.png'],
    ['linux', '/app/tray/active.png'],
    ['win32', '/app/tray/active.png'],
  ] as const)('%s uses %s for an active grant', (platform, image) => {
    const t = setup(platform);
    t.controller.update(withGrant(42 * MIN));
    expect(t.of('image')).toEqual([image]);
    expect(t.of('title')).toEqual(platform === 'darwin' ? ['42m'] : []);
    expect(t.of('tooltip')).toEqual(['Stint — prod-orders (write) 42m left']);
  });

  it('maps every state to a file that exists', async () => {
    const { existsSync } = await import('node:fs');
    for (const icon of ['idle', 'active', 'waiting', 'needs_you', 'offline'] as const) {
      for (const platform of ['darwin', 'linux'] as const) expect(existsSync(trayIconPath(icon, platform, 'build/resources/tray')), `${icon} ${platform}`).toBe(true);
    }
    expect(trayIconPath('needs_you', 'darwin', '/x')).toBe('/x/attentionTemplate.png');
    expect(trayIconPath('waiting', 'linux', '/x')).toBe('/x/pending.png');
  });

  it('changes the icon only when the state calls for it', () => {
    const t = setup('linux');
    t.controller.update(state({ resources }));
    t.controller.update(state({ resources, requests: [request('r1')] }));
    t.controller.update(state({ resources, requests: [request('r1')] }));
    t.controller.update(state({ resources, approvals: [request('r2', { requester: 'bob' })] }));
    t.controller.update(state({ session: { status: 'signed_out' } }));
    expect(t.of('image')).toEqual(['/app/tray/idle.png', '/app/tray/pending.png', '/app/tray/attention.png', '/app/tray/offline.png']);
  });

  it('menu and tooltip countdowns are minute-granular; only the title counts seconds', () => {
    expect(formatCountdownMinutes(7_000)).toBe('1m');
    expect(formatCountdownMinutes(60_000)).toBe('1m');
    expect(formatCountdownMinutes(61_000)).toBe('2m');
    expect(formatCountdownMinutes(3 * 3600_000 + 10 * 60_000)).toBe('3h 10m');
    expect(formatCountdownMinutes(0)).toBe('0:00');
  });
});

describe('tray actions', () => {
  const click = (template: MenuItemConstructorOptions[], ...path: string[]): void => {
    let items = template;
    let item: MenuItemConstructorOptions | undefined;
    for (const label of path) {
      item = items.find((i) => i.label?.startsWith(label));
      if (!item) throw new Error(`no menu item ${label} in ${labels(items).join(', ')}`);
      items = (item.submenu as MenuItemConstructorOptions[]) ?? [];
    }
    (item!.click as (...args: unknown[]) => void)({ checked: !item!.checked });
  };

  it('menu items dispatch their model action', () => {
    const t = setup('linux');
    t.controller.update(withGrant(42 * MIN, { approvals: [request('r2', { requester: 'bob' })] }));
    const template = t.menus.at(-1)!;
    click(template, 'prod-orders · write', 'Open in psql');
    click(template, 'prod-orders · write', 'Extend…');
    click(template, 'bob →', 'Approve…');
    click(template, 'Request access', 'Staging', 'staging-users');
    click(template, 'Quit');
    expect(t.dispatched).toEqual([
      { type: 'call', method: 'openPsql', input: { grantId: 'g1' } },
      { type: 'open', view: 'extend', params: { grantId: 'g1' } },
      { type: 'open', view: 'approve', params: { requestId: 'r2' } },
      { type: 'open', view: 'request', params: { resourceId: 'staging-users' } },
      { type: 'quit' },
    ]);
    expect(template.find((i) => i.label?.startsWith('Signed in'))?.enabled).toBe(false);
  });

  it('a shell toggle (launch at login) sits before Quit and rebuilds the menu when flipped', () => {
    let on = false;
    const toggle: ShellToggle = { label: 'Launch at login', checked: () => on, set: (v) => { on = v; } };
    const t = setup('linux', [toggle]);
    t.controller.update(state({ resources }));
    expect(labels(t.menus[0]!).slice(-2)).toEqual(['Launch at login', 'Quit']);
    expect(t.menus[0]!.at(-2)).toMatchObject({ type: 'checkbox', checked: false });
    click(t.menus[0]!, 'Launch at login');
    expect(on).toBe(true);
    expect(t.menus).toHaveLength(2);
    expect(t.menus[1]!.at(-2)).toMatchObject({ checked: true });
  });

  it('the dispatcher calls the agent, opens windows, quits, and reports failed calls', async () => {
    const seen: string[] = [];
    const dispatch = trayDispatcher({
      call: async (method, input) => { seen.push(`call ${method} ${JSON.stringify(input)}`); if (method === 'release') throw new Error('offline'); },
      open: (view, params) => seen.push(`open ${view} ${JSON.stringify(params)}`),
      quit: () => seen.push('quit'),
      onError: (e) => seen.push(`error ${(e as Error).message}`),
    });
    dispatch({ type: 'call', method: 'copyConnectionUri', input: { grantId: 'g1' } });
    dispatch({ type: 'call', method: 'release', input: { grantId: 'g1' } });
    dispatch({ type: 'open', view: 'main' });
    dispatch({ type: 'quit' });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(['call copyConnectionUri {"grantId":"g1"}', 'call release {"grantId":"g1"}', 'open main {}', 'quit', 'error offline']);
  });

  it('a call refused for a step-up opens the window its action names for that; any other failure is reported', async () => {
    const seen: string[] = [];
    const refusals: Record<string, Error> = {
      g1: new AgentError('stepup_required', 'Taking this access back needs a step-up.'),
      g2: new AgentError('server_unreachable', 'The server cannot be reached.'),
    };
    const dispatch = trayDispatcher({
      call: async (method, input) => { seen.push(`call ${method} ${input.grantId}`); throw refusals[input.grantId!]; },
      open: (view, params) => seen.push(`open ${view} ${JSON.stringify(params)}`),
      quit: () => seen.push('quit'),
      onError: (e) => seen.push(`error ${(e as Error).message}`),
    });
    const resume = (grantId: string): TrayAction => ({ type: 'call', method: 'resumeGrant', input: { grantId }, onStepUp: { type: 'open', view: 'resume', params: { grantId, requestId: `r-${grantId}` } } });
    dispatch(resume('g1'));
    dispatch(resume('g2'));
    // Without a window to go to, a step-up refusal is reported like any failure.
    dispatch({ type: 'call', method: 'connect', input: { grantId: 'g1' } });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual([
      'call resumeGrant g1', 'call resumeGrant g2', 'call connect g1',
      'open resume {"grantId":"g1","requestId":"r-g1"}', 'error The server cannot be reached.', 'error Taking this access back needs a step-up.',
    ]);
  });
});
