// The Electron shell: glue between the OS (tray, notifications, power events) and the agent core.
// Business logic lives in electron/core; this file only wires it to Electron.
import { app, session } from 'electron';
import { join } from 'node:path';
import { createSecureWindow } from './window';
import { CONTENT_SECURITY_POLICY } from './csp';

if (!app.requestSingleInstanceLock()) app.quit();

app.on('web-contents-created', (_event, contents) => {
  // No navigation, no new windows, no webviews: the UI is one bundled page.
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-attach-webview', (event) => event.preventDefault());
});

void app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_contents, permission, callback) => {
    callback(permission === 'notifications' || permission === 'clipboard-sanitized-write');
  });
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
  const window = createSecureWindow(join(import.meta.dirname, '../preload/index.cjs'), { width: 960, height: 680, show: false });
  void window.loadFile(join(import.meta.dirname, '../../renderer/index.html'));
  window.once('ready-to-show', () => window.show());
});
