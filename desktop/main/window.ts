// Every window Stint opens is created here, with the same locked-down preferences written out literally (so
// reviewers and electronegativity see them at the call site): the renderer is untrusted UI code that reaches the
// agent only through the preload's typed functions.
import { BrowserWindow, type BrowserWindowConstructorOptions } from 'electron';

export function createSecureWindow(preload: string, options: Omit<BrowserWindowConstructorOptions, 'webPreferences'> = {}, partition?: string): BrowserWindow {
  return new BrowserWindow({
    ...options,
    webPreferences: {
      preload,
      // The step-up partition (stepup-origin.ts) for windows at the server's origin; the default session otherwise.
      ...(partition ? { partition } : {}),
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
      disableBlinkFeatures: 'Auxclick',
    },
  });
}
