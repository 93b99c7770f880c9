// The Electron shell's composition root: it only wires Electron to the agent core and to the small modules beside
// it (tray, notifications, windows, deep links, step-up origin, power, settings, launcher), each unit-tested under
// Node with Electron's surfaces injected. Nothing here decides anything those modules do not.
import {
  app, clipboard, ipcMain, Menu, Notification, powerMonitor, screen, session, shell, Tray,
  type BrowserWindow, type BrowserWindowConstructorOptions,
} from 'electron';
import { join, resolve } from 'node:path';
import { createAgent } from '../../agent/core/compose';
import type { Clipboard } from '../../agent/core/clipboard';
import { systemClock } from '../../shared/domain/clock';
import { toAgentProblem } from '../../agent/core/agent-core';
import type { AgentApiHandlers } from '../../shared/contract/agent';
import { createSecureWindow } from './window';
import { forwardAgentEvents, registerAgentIpc, trustedOrigins } from './ipc';
import { TrayController, trayDispatcher, trayIconPath, type ShellToggle } from './tray';
import { NotificationController, type NotificationConstructor, type NotificationEffect } from './notifications';
import { POPOVER_SIZE, WindowManager, type OpenView, type UiLocation, type WindowKind, type WindowLike } from './windows';
import { PROTOCOL, deepLinkFromArgv, parseDeepLink } from './deep-links';
import { STEP_UP_PARTITION, configureWebAuthn, installStepUpProtocol, stepUpOrigin } from './stepup-origin';
import { ClockChangeDetector, watchPower } from './power';
import { ElectronSettingsStore, applyLaunchAtLogin, openElectronStore, readShellSettings, writeShellSettings } from './settings-store';
import { settingsFromEnvironment } from '../../agent/core/settings';
import { terminalLauncher } from '../../agent/core/launcher';
import { listenLocalSocket } from '../../agent/core/local-socket';
import { hardenSession } from './session-policy';

// dist/desktop/main/index.js → the app's root (inside the asar when packaged).
const root = resolve(import.meta.dirname, '../../..');
const rendererDir = join(root, 'dist/renderer');
const preload = join(root, 'dist/desktop/preload/index.cjs');
const iconDir = join(root, 'build/resources/tray');
const startHidden = process.argv.includes('--hidden');

// Tests (test/e2e/electron.spec.ts) and side-by-side runs keep their settings apart from the user's.
if (process.env.STINT_USER_DATA) app.setPath('userData', process.env.STINT_USER_DATA);

const pendingLinks: string[] = [];
let handleLink: (url: string) => void = (url) => void pendingLinks.push(url);

if (!app.requestSingleInstanceLock()) {
  // Another Stint is running: it receives our argv (and any stint:// link) through 'second-instance'.
  app.quit();
} else {
  // A packaged app registers its own path; in development Electron runs our script, which must be named.
  if (process.defaultApp && process.argv[1]) app.setAsDefaultProtocolClient(PROTOCOL, process.execPath, [resolve(process.argv[1])]);
  else app.setAsDefaultProtocolClient(PROTOCOL);

  // macOS delivers links by event, possibly before 'ready'; Windows and Linux in argv.
  app.on('open-url', (event, url) => { event.preventDefault(); handleLink(url); });
  const initialLink = deepLinkFromArgv(process.argv);
  if (initialLink) pendingLinks.push(initialLink);

  app.on('web-contents-created', (_event, contents) => {
    // No navigation, no new windows, no webviews: the UI is one bundled page, moved only by the main process.
    contents.on('will-navigate', (event) => event.preventDefault());
    contents.on('will-redirect', (event) => event.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
    contents.on('will-attach-webview', (event) => event.preventDefault());
  });

  // A tray app: closing its last window does not quit it (registering the listener overrides the default).
  app.on('window-all-closed', () => {});

  void app.whenReady().then(start).catch((error: unknown) => {
    console.error('Stint could not start:', toAgentProblem(error).detail);
    app.exit(1);
  });
}

async function start(): Promise<void> {
  app.dock?.hide();
  const kv = await openElectronStore();
  const settings = new ElectronSettingsStore(kv);
  const seeded = settingsFromEnvironment(settings.get(), process.env);
  if (seeded) settings.update(seeded);
  const currentOrigin = () => stepUpOrigin(settings.get().serverUrl);

  hardenSession(session.defaultSession);
  const stepUpSession = session.fromPartition(STEP_UP_PARTITION);
  hardenSession(stepUpSession);
  installStepUpProtocol(stepUpSession, { rendererDir, origin: currentOrigin });
  // The server lists only this user's credentials (allowCredentials), so any account offered is theirs.
  stepUpSession.on('select-webauthn-account', (_event, details, callback) => callback(details.accounts[0]?.credentialId));
  configureWebAuthn(app, process.platform, process.env.STINT_APPLE_TEAM_ID);

  const electronClipboard: Clipboard = {
    readText: () => clipboard.readText(),
    writeText: (text) => clipboard.writeText(text),
    clear: () => clipboard.clear(),
  };
  const agent = createAgent({
    settings,
    // Only the IdP's sign-in page, in the user's browser (never a file: or custom-scheme URL).
    openUrl: (url) => {
      if (!/^https?:\/\//i.test(url)) throw new Error('Refusing to open a non-web URL.');
      return shell.openExternal(url);
    },
    clipboard: electronClipboard,
    launcher: terminalLauncher(),
    dataDir: app.getPath('userData'),
  });

  const tray = new Tray(trayIconPath('offline', process.platform, iconDir));
  const windows = new WindowManager({
    ui: (): UiLocation => {
      const origin = currentOrigin();
      return origin ? { kind: 'origin', origin } : { kind: 'file', indexFile: join(rendererDir, 'index.html') };
    },
    factory: {
      create: (kind, partition) => electronWindow(kind, partition),
      trayBounds: () => (tray.isDestroyed() ? undefined : tray.getBounds()),
      workAreaNear: (point) => (point ? screen.getDisplayNearestPoint(point) : screen.getPrimaryDisplay()).workArea,
    },
  });
  const open = (view: OpenView, params: Record<string, string> = {}) => { windows.open(view, params); };
  const call = (method: keyof AgentApiHandlers, input: Record<string, string>) => (agent.api[method] as (i: unknown) => Promise<unknown>)(input);
  const notifyProblem = (error: unknown) => {
    if (Notification.isSupported()) new Notification({ title: 'Stint', body: toAgentProblem(error).detail }).show();
  };

  const unregisterIpc = registerAgentIpc(ipcMain, agent, trustedOrigins({ rendererDir, stepUpOrigin: currentOrigin, windowIds: () => windows.ids() }));
  const stopForwarding = forwardAgentEvents(agent, () => windows.all());

  const notifications = new NotificationController({
    Notification: Notification as unknown as NotificationConstructor,
    isSupported: () => Notification.isSupported(),
    platform: process.platform,
    act: (effect: NotificationEffect) => {
      if (effect.type === 'open') open(effect.view, effect.params);
      else void call(effect.method, effect.input).catch(notifyProblem);
    },
  });

  const launchAtLogin: ShellToggle = {
    label: 'Launch at login',
    checked: () => readShellSettings(kv).launchAtLogin,
    set: (enabled) => {
      writeShellSettings(kv, { launchAtLogin: enabled });
      void applyLaunchAtLogin(enabled, loginDeps()).catch(notifyProblem);
    },
  };
  void applyLaunchAtLogin(readShellSettings(kv).launchAtLogin, loginDeps()).catch(() => {});

  const trayController = new TrayController({
    tray,
    menu: Menu,
    platform: process.platform,
    iconDir,
    clock: systemClock,
    toggles: [launchAtLogin],
    dispatch: trayDispatcher({ call, open, quit: () => app.quit(), onError: notifyProblem }),
  });
  // Windows and Linux: a left click opens Stint (macOS shows the menu on click by itself).
  if (process.platform !== 'darwin') tray.on('click', () => open('main'));

  let lastOrigin = currentOrigin();
  const stopEvents = agent.subscribe((event) => {
    if (event.type === 'state') {
      trayController.update(event.state);
      // The server changed. file:// windows stay trusted (the next open() moves them to the new origin); windows at
      // the old server's origin would now be refused by IPC, so they reopen at the new one (on Settings, where the
      // server is changed).
      const origin = currentOrigin();
      if (origin !== lastOrigin) {
        const stale = lastOrigin !== undefined && windows.all().length > 0;
        lastOrigin = origin;
        if (stale) { windows.closeAll(); open('settings'); }
      }
    }
    notifications.handle(event);
  });

  const detector = new ClockChangeDetector({ clock: systemClock, onChange: () => agent.clockChanged() });
  detector.start();
  const stopPower = watchPower(powerMonitor, { resume: () => { agent.resume(); detector.check(); }, clockChanged: () => agent.clockChanged() }, {
    onSleepOrLock: () => windows.closePopover(),
  });

  handleLink = (url) => {
    const parsed = parseDeepLink(url);
    if (parsed.ok) open(parsed.link.view, parsed.link.params);
    else console.warn(`Ignored a stint:// link: ${parsed.reason}.`);
  };
  app.on('second-instance', (_event, argv) => {
    const link = deepLinkFromArgv(argv);
    if (link) handleLink(link);
    else open('main');
  });
  for (const link of pendingLinks.splice(0)) handleLink(link);

  // A failed start (e.g. no keychain) is shown, not fatal: the tray and Settings must stay reachable to fix it.
  await agent.start().catch(notifyProblem);
  // `stint connect` in a terminal reaches this agent through its socket in the app's data folder.
  const localSocket = await listenLocalSocket({ agent, dataDir: app.getPath('userData') }).catch((error) => { notifyProblem(error); return undefined; });
  // The e2e smoke test checks the tray from the main process; nothing else reads this.
  if (process.env.STINT_E2E === '1') Object.assign(globalThis, { __stintE2E: { tray } });
  if (!startHidden && windows.all().length === 0) open('main');

  let quitting = false;
  app.on('before-quit', (event) => {
    if (quitting) return;
    // End local access cleanly first (tunnels closed, secrets wiped), then quit for real.
    event.preventDefault();
    quitting = true;
    trayController.dispose();
    notifications.dispose();
    detector.stop();
    stopPower();
    stopEvents();
    stopForwarding();
    unregisterIpc();
    windows.closeAll();
    tray.destroy();
    void localSocket?.close();
    void agent.dispose().catch(() => {}).finally(() => app.quit());
  });

  function electronWindow(kind: WindowKind, partition: string | undefined): WindowLike {
    const options: Omit<BrowserWindowConstructorOptions, 'webPreferences'> = kind === 'popover'
      ? { ...POPOVER_SIZE, frame: false, resizable: false, movable: false, minimizable: false, maximizable: false, fullscreenable: false, skipTaskbar: true, alwaysOnTop: true, show: false, title: 'Stint' }
      : { width: 960, height: 680, minWidth: 640, minHeight: 480, show: false, title: 'Stint' };
    const win: BrowserWindow = createSecureWindow(preload, options, partition);
    const contentsId = win.webContents.id;
    let ready = false;
    let wanted = false;
    win.once('ready-to-show', () => { ready = true; if (wanted) { win.show(); win.focus(); } });
    return {
      contentsId,
      load: (url) => void win.loadURL(url).catch((error: unknown) => console.warn('Stint window failed to load:', (error as Error).message)),
      show: () => { wanted = true; if (ready) { win.show(); win.focus(); } },
      close: () => { if (!win.isDestroyed()) win.close(); },
      isDestroyed: () => win.isDestroyed(),
      setPosition: (x, y) => win.setPosition(x, y),
      send: (channel, payload) => { if (!win.isDestroyed()) win.webContents.send(channel, payload); },
      onClosed: (listener) => { win.on('closed', listener); },
      onInput: (listener) => { win.webContents.on('before-input-event', (_event, input) => listener(input)); },
    };
  }
}

function loginDeps() {
  // An AppImage runs from a temporary mount: autostart must name the AppImage file itself.
  return { app, platform: process.platform, execPath: process.env.APPIMAGE ?? process.execPath };
}
