// The one Content-Security-Policy of the UI: nothing but our own bundle. Every place that serves the renderer uses
// this — the Electron shell's response headers, the web host's, and the meta tag Vite writes into index.html (for
// pages loaded from file://, which carry no headers) — so the policy cannot drift between hosts.
const DIRECTIVES: readonly (readonly [string, string])[] = [
  ['default-src', "'none'"],
  ['script-src', "'self'"],
  ['style-src', "'self'"],
  ['img-src', "'self' data:"],
  ['font-src', "'self'"],
  ['connect-src', "'self'"],
  ['base-uri', "'none'"],
  ['form-action', "'none'"],
  ['frame-ancestors', "'none'"],
];

/** Browsers ignore frame-ancestors in a meta tag (and warn about it), so the meta form leaves it out. */
const HEADER_ONLY = new Set(['frame-ancestors']);

export function contentSecurityPolicy(where: 'header' | 'meta' = 'header'): string {
  return DIRECTIVES.filter(([name]) => where === 'header' || !HEADER_ONLY.has(name)).map(([name, value]) => `${name} ${value}`).join('; ');
}

export const CONTENT_SECURITY_POLICY = contentSecurityPolicy('header');
