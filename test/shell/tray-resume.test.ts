// The tray's Resume (#21) on the real stack, without Electron: a real agent restarted on the device whose Stint was
// killed mid-grant, the shell's own tray controller, dispatcher and window manager wired to it as
// desktop/main/index.ts wires them, and only Electron's surfaces (the Tray, the Menu builder, BrowserWindow) replaced
// by recorders. What a user sees: where the policy asks for no step-up, Resume in the menu takes the grant back then
// and there; where it asks for one, Resume opens the window where they give it — the Active view's step-up dialog
// for that grant — and what that dialog then sends takes the grant back. Either way the killed run's password is dead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MenuItemConstructorOptions } from 'electron';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startStack, type Stack } from '../harness/stack';
import { serviceDir } from '../../dev/run-dir';
import type { Agent } from '../../agent/core/agent';
import type { AgentApiHandlers } from '../../shared/contract/agent';
import { systemClock } from '../../shared/domain/clock';
import { TrayController, trayDispatcher } from '../../desktop/main/tray';
import { WindowManager, type WindowKind, type WindowLike } from '../../desktop/main/windows';
import { STEP_UP_PARTITION, stepUpOrigin } from '../../desktop/main/stepup-origin';
import { routeFrom } from '../../renderer/src/route';
import { AuthenticatorApp, crashMidGrant, queryOnce } from '../journeys/faults-support';

let stack: Stack;
beforeAll(async () => { stack = await startStack({ mariadb: true }); }, 120_000);
afterAll(async () => { await stack?.stop(); });

interface MadeWindow { kind: WindowKind; partition: string | undefined; loads: string[]; shown: number }

/** The shell around `agent` with Electron's surfaces recorded: the menus built, the windows made, the problems shown. */
function trayShell(agent: Agent) {
  const menus: MenuItemConstructorOptions[][] = [];
  const windows: MadeWindow[] = [];
  const problems: unknown[] = [];
  let nextId = 1;
  const manager = new WindowManager({
    ui: () => ({ kind: 'origin', origin: stepUpOrigin(stack.serverUrl)! }),
    factory: {
      create: (kind, partition): WindowLike => {
        const made: MadeWindow = { kind, partition, loads: [], shown: 0 };
        windows.push(made);
        return {
          contentsId: nextId++,
          load: (url) => void made.loads.push(url),
          show: () => void made.shown++,
          close: () => undefined,
          isDestroyed: () => false,
          setPosition: () => undefined,
          send: () => undefined,
          onClosed: () => undefined,
          onInput: () => undefined,
        };
      },
      trayBounds: () => undefined,
      workAreaNear: () => ({ x: 0, y: 0, width: 1920, height: 1080 }),
    },
  });
  const controller = new TrayController({
    tray: { setImage: () => undefined, setTitle: () => undefined, setToolTip: () => undefined, setContextMenu: () => undefined },
    menu: { buildFromTemplate: (template) => { menus.push(template); return template; } },
    platform: 'linux',
    iconDir: 'build/resources/tray',
    clock: systemClock,
    dispatch: trayDispatcher({
      call: (method, input) => (agent.api[method as keyof AgentApiHandlers] as (i: unknown) => Promise<unknown>)(input),
      open: (view, params) => { manager.open(view, params); },
      quit: () => undefined,
      onError: (error) => void problems.push(error),
    }),
  });
  const stop = agent.subscribe((event) => { if (event.type === 'state') controller.update(event.state); });
  controller.update(agent.state());

  /** The item at `path` (each label's start) in the menu shown now. */
  const item = (...path: string[]): MenuItemConstructorOptions => {
    let items = menus.at(-1)!;
    let found: MenuItemConstructorOptions | undefined;
    for (const label of path) {
      found = items.find((i) => i.label?.startsWith(label));
      if (!found) throw new Error(`no menu item "${label}" in ${items.map((i) => i.label ?? '---').join(', ')}`);
      items = (found.submenu as MenuItemConstructorOptions[] | undefined) ?? [];
    }
    return found!;
  };
  return {
    menus, windows, problems, item,
    click: (...path: string[]) => (item(...path).click as () => void)(),
    labels: (...path: string[]) => ((item(...path).submenu as MenuItemConstructorOptions[]) ?? []).map((i) => i.label),
    dispose: () => { stop(); controller.dispose(); },
  };
}

/** A login straight to PostgreSQL (no tunnel) with a grant's role and a password, as whoever copied them could. */
async function pgLogin(role: string, password: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, database: 'users', user: role, password, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

describe('the tray\'s Resume after a crash', () => {
  it('no step-up in the policy: Resume in the menu takes the grant back at once — no window, psql works, the old password does not', async () => {
    const device = 'device-tray-resume';
    const a = await crashMidGrant(stack, { device });
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const copied = await pgLogin(a.role, oldPassword);

    const b = stack.agent('alice', { deviceId: device, dataDir: serviceDir('tray-resume-agent') });
    await b.agent.start();
    const tray = trayShell(b.agent);
    try {
      expect(tray.labels('Users (staging) · read')).toEqual(['Stint stopped while this access was active', 'Resume', 'End']);
      tray.click('Users (staging) · read', 'Resume');

      await expect.poll(() => b.agent.state().grants.find((g) => g.grant.id === a.grantId)?.tunnel?.status, { timeout: 20_000 }).toBe('open');
      const shown = b.agent.state().grants.find((g) => g.grant.id === a.grantId)!;
      expect(shown.leftFromBefore).toBeUndefined();
      // The menu shows it as ordinary access again; nothing opened, nothing went wrong.
      await expect.poll(() => tray.labels('Users (staging) · read'), { timeout: 5_000 }).toEqual(['Open in psql', 'Copy connection URI', 'Extend…', 'End now']);
      expect(tray.windows).toEqual([]);
      expect(tray.problems).toEqual([]);

      const { uri } = await b.agent.api.connectionUri({ grantId: a.grantId });
      expect(await queryOnce(uri, 'select count(*)::int as n from users')).toEqual([{ n: 25 }]);
      await expect(copied.query('select 1')).rejects.toThrow();
      await expect(pgLogin(a.role, oldPassword)).rejects.toThrow(/password authentication failed/);
    } finally {
      tray.dispose();
      await copied.end().catch(() => undefined);
      await b.agent.api.release({ grantId: a.grantId }).catch(() => undefined);
    }
  }, 90_000);

  it('a policy that asks for a step-up: Resume opens the Active view\'s step-up dialog for that grant, whose proof takes it back', async () => {
    const holder = stack.agent('alice');
    await holder.signIn();
    const app = await AuthenticatorApp.enroll(holder.agent);
    const device = 'device-tray-resume-stepup';
    const a = await crashMidGrant(stack, { device, resourceId: 'staging-shop', code: await app.nextCode() });
    const db = stack.mariadb!;
    const oldPassword = decodeURIComponent(new URL(a.uri).password);
    const copied = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: a.role, password: oldPassword, database: 'shop' });
    copied.on('error', () => undefined);

    const b = stack.agent('alice', { deviceId: device, dataDir: serviceDir('tray-resume-stepup-agent') });
    await b.agent.start();
    const tray = trayShell(b.agent);
    try {
      const SHOP = 'Shop (staging, MariaDB) · read';
      tray.click(SHOP, 'Resume');

      // The popover by the tray, on the step-up origin (where passkeys work), at the renderer's resume step-up.
      await expect.poll(() => tray.windows.length, { timeout: 20_000 }).toBe(1);
      const [popover] = tray.windows;
      expect(popover).toMatchObject({ kind: 'popover', partition: STEP_UP_PARTITION, shown: 1 });
      const page = new URL(popover!.loads[0]!);
      expect(page.origin + page.pathname).toBe(`${stack.serverUrl}/_stint/index.html`);
      const route = routeFrom(page.search, ['active', 'waiting']);
      expect(route).toEqual({ view: 'active', dialog: { kind: 'stepup', action: 'resume', grantId: a.grantId, requestId: a.requestId } });
      // Refused for the step-up, not failed: no problem shown, and the grant still waits, its old password still alive.
      expect(tray.problems).toEqual([]);
      expect(b.agent.state().grants.find((g) => g.grant.id === a.grantId)).toMatchObject({ leftFromBefore: true });
      expect(await copied.query('SELECT 1 AS one').then(([rows]) => rows)).toEqual([{ one: 1 }]);

      // What the dialog sends (renderer/src/App.tsx): a challenge for the route's request, its proof with the resume.
      const dialog = route.dialog as { grantId: string; requestId: string };
      const challenge = await b.agent.api.stepUpChallenge({ action: { kind: 'request', requestId: dialog.requestId } });
      expect(challenge.summary).toMatch(/^Take back your read access to staging-shop with new keys/);
      const resumed = await b.agent.api.resumeGrant({ grantId: dialog.grantId, stepUp: { method: 'totp', challengeId: challenge.challengeId, code: await app.nextCode() } });
      expect(resumed).toMatchObject({ grantId: a.grantId, user: a.role });
      await expect.poll(() => tray.labels(SHOP), { timeout: 5_000 }).toEqual(['Open in mariadb', 'Copy connection URI', 'Extend…', 'End now']);

      const { uri } = await b.agent.api.connectionUri({ grantId: a.grantId });
      const fresh = new URL(uri);
      const through = await mysql.createConnection({ host: fresh.hostname, port: Number(fresh.port), user: a.role, password: decodeURIComponent(fresh.password), database: 'shop' });
      expect(await through.query('SELECT COUNT(*) AS n FROM products').then(([rows]) => rows)).toEqual([{ n: 5 }]);
      await through.end();
      // The killed run's password: its session was ended, and it logs in no more.
      await expect(copied.query('SELECT 1')).rejects.toThrow();
      await expect(mysql.createConnection({ host: '127.0.0.1', port: db.port, user: a.role, password: oldPassword })).rejects.toThrow(/Access denied/);
      expect(tray.windows).toHaveLength(1);
      expect(tray.problems).toEqual([]);
    } finally {
      tray.dispose();
      copied.destroy();
      await b.agent.api.release({ grantId: a.grantId }).catch(() => undefined);
    }
  }, 120_000);
});
