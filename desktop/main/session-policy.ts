// What every Stint session allows, for the default session and the step-up partition alike: only notifications and
// sanitized clipboard writes (copy a connection URI); every other permission (camera, geolocation, HID, …) is denied,
// both when a page asks and when it merely checks.
import { CONTENT_SECURITY_POLICY } from '../../shared/contract/csp';

const ALLOWED = new Set(['notifications', 'clipboard-sanitized-write']);

export function permissionAllowed(permission: string): boolean {
  return ALLOWED.has(permission);
}

export interface HardenableSession {
  setPermissionRequestHandler(handler: (contents: unknown, permission: string, callback: (granted: boolean) => void) => void): void;
  setPermissionCheckHandler(handler: (contents: unknown, permission: string) => boolean): void;
  webRequest: {
    onHeadersReceived(listener: (details: { responseHeaders?: Record<string, string[]> }, callback: (response: { responseHeaders?: Record<string, string[]> }) => void) => void): void;
  };
}

export function hardenSession(session: HardenableSession): void {
  session.setPermissionRequestHandler((_contents, permission, callback) => callback(permissionAllowed(permission)));
  session.setPermissionCheckHandler((_contents, permission) => permissionAllowed(permission));
  // The CSP as a header too (the page's meta tag is the same), so it holds even for a response without the tag.
  session.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
}
