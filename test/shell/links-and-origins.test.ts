// Deep links, the step-up origin's request routing and the IPC trust rules: pure functions at the shell's edges,
// where anything (a web page opening stint://, a page in a Stint window) may be hostile.
import { describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceDir } from '../../dev/run-dir';
import { pathToFileURL } from 'node:url';
import { deepLinkFromArgv, parseDeepLink } from '../../desktop/main/deep-links';
import {
  STEP_UP_PARTITION, configureWebAuthn, installStepUpProtocol, routeUiRequest, stepUpOrigin, uiProtocolHandler, webAuthnKeychainGroup,
} from '../../desktop/main/stepup-origin';
import { forwardAgentEvents, trustedOrigins } from '../../desktop/main/ipc';
import { readFileSync } from 'node:fs';

describe('deep links', () => {
  it('accepts the two documented shapes', () => {
    expect(parseDeepLink('stint://request/prod-orders')).toEqual({ ok: true, link: { view: 'request', params: { resourceId: 'prod-orders' } } });
    expect(parseDeepLink('stint://approve/req_01H:x.y-z')).toEqual({ ok: true, link: { view: 'approve', params: { requestId: 'req_01H:x.y-z' } } });
    expect(parseDeepLink('STINT://Request/prod-orders')).toMatchObject({ ok: true, link: { view: 'request' } });
  });

  it.each([
    ['another scheme', 'https://request/prod-orders'],
    ['an unknown action', 'stint://deny/req_1'],
    ['an action that would act', 'stint://release/g1'],
    ['no id', 'stint://request/'],
    ['no id at all', 'stint://request'],
    ['extra segments', 'stint://request/prod-orders/extra'],
    ['traversal', 'stint://approve/..%2F..%2Fsettings'],
    ['an encoded slash', 'stint://request/a%2Fb'],
    ['a query', 'stint://approve/req_1?auto=1'],
    ['a fragment', 'stint://approve/req_1#approve'],
    ['credentials', 'stint://user:pw@approve/req_1'],
    ['a port', 'stint://approve:99/req_1'],
    ['invalid characters', 'stint://request/prod orders'],
    ['script', 'stint://request/<script>'],
    ['not a URL', 'request/prod-orders'],
    ['a huge link', `stint://request/${'a'.repeat(600)}`],
    ['bad percent-encoding', 'stint://request/%E0%A4%A'],
  ])('refuses %s', (_name, link) => {
    expect(parseDeepLink(link).ok).toBe(false);
  });

  it('finds the link in a second instance argv', () => {
    expect(deepLinkFromArgv(['/opt/Stint/stint', '--flag', 'stint://approve/req_1'])).toBe('stint://approve/req_1');
    expect(deepLinkFromArgv(['/opt/Stint/stint', '--hidden'])).toBeUndefined();
  });
});

describe('step-up origin', () => {
  it('is the server origin when WebAuthn can work there', () => {
    expect(stepUpOrigin('https://stint.example.com')).toBe('https://stint.example.com');
    expect(stepUpOrigin('https://stint.example.com:8443/api/')).toBe('https://stint.example.com:8443');
    expect(stepUpOrigin('http://localhost:4000')).toBe('http://localhost:4000');
  });

  it.each([
    ['no server', undefined],
    ['an IP address (not a valid RP ID)', 'https://10.0.0.5'],
    ['an IPv6 address', 'https://[::1]:8443'],
    ['plain http to a domain', 'http://stint.example.com'],
    ['a single-label host', 'https://stint'],
    ['garbage', 'not a url'],
  ])('is unavailable for %s', (_name, url) => {
    expect(stepUpOrigin(url)).toBeUndefined();
  });
});

describe('step-up request routing', () => {
  const origin = 'https://stint.example.com';
  const dir = '/opt/Stint/resources/app.asar/dist/renderer';

  it('serves bundled files under /_stint/ at the step-up origin', () => {
    expect(routeUiRequest('GET', `${origin}/_stint/index.html?view=stepup&requestId=r1`, origin, dir)).toEqual({ type: 'file', path: `${dir}/index.html`, contentType: 'text/html; charset=utf-8' });
    expect(routeUiRequest('GET', `${origin}/_stint/`, origin, dir)).toMatchObject({ type: 'file', path: `${dir}/index.html` });
    expect(routeUiRequest('GET', `${origin}/_stint/assets/index-abc.js`, origin, dir)).toMatchObject({ type: 'file', path: `${dir}/assets/index-abc.js`, contentType: expect.stringMatching(/javascript/) });
    expect(routeUiRequest('HEAD', `${origin}/_stint/assets/index-abc.css`, origin, dir)).toMatchObject({ type: 'file' });
  });

  it.each([
    ['the API (the page talks to the agent, never the server)', `${origin}/v1/requests`, 403],
    ['the server root', `${origin}/`, 403],
    ['another origin', 'https://evil.example/_stint/index.html', 403],
    ['a lookalike host', 'https://stint.example.com.evil.example/_stint/index.html', 403],
    ['another port', 'https://stint.example.com:444/_stint/index.html', 403],
    ['plain http', 'http://stint.example.com/_stint/index.html', 403],
    ['encoded traversal', `${origin}/_stint/%2e%2e/%2e%2e/etc/passwd`, 403],
    ['encoded slash traversal', `${origin}/_stint/assets%2F..%2F..%2F..%2Fsecret.js`, 404],
    ['a backslash', `${origin}/_stint/assets%5C..%5Cx.js`, 404],
    ['a NUL byte', `${origin}/_stint/index.html%00.js`, 404],
    ['a file type we do not ship', `${origin}/_stint/package.json.bak`, 404],
    ['an empty segment', `${origin}/_stint/assets//x.js`, 404],
  ])('refuses %s', (_name, url, status) => {
    expect(routeUiRequest('GET', url, origin, dir)).toMatchObject({ type: 'refuse', status });
  });

  it('refuses everything when no origin is configured, and anything but GET/HEAD', () => {
    expect(routeUiRequest('GET', `${origin}/_stint/index.html`, undefined, dir)).toMatchObject({ type: 'refuse', status: 403 });
    expect(routeUiRequest('POST', `${origin}/_stint/index.html`, origin, dir)).toMatchObject({ type: 'refuse', status: 405 });
  });

  it('the protocol handler answers from the files with the CSP, and 404s what is missing', async () => {
    const root = serviceDir('stint-ui');
    try {
      mkdirSync(join(root, 'renderer/assets'), { recursive: true });
      writeFileSync(join(root, 'renderer/index.html'), '<h1>Stint</h1>');
      writeFileSync(join(root, 'secret.js'), 'leak');
      let current: string | undefined = origin;
      const handlers = new Map<string, (r: Request) => Promise<Response>>();
      installStepUpProtocol({ protocol: { handle: (scheme, h) => void handlers.set(scheme, h) } }, { rendererDir: join(root, 'renderer'), origin: () => current });
      expect([...handlers.keys()].sort()).toEqual(['http', 'https']);
      const handle = handlers.get('https')!;
      const page = await handle(new Request(`${origin}/_stint/index.html?view=stepup`));
      expect(page.status).toBe(200);
      expect(await page.text()).toBe('<h1>Stint</h1>');
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await handle(new Request(`${origin}/_stint/assets/missing.js`))).status).toBe(404);
      expect((await handle(new Request(`${origin}/_stint/..%2Fsecret.js`))).status).toBe(404);
      expect((await handle(new Request(`${origin}/v1/me`))).status).toBe(403);
      // The server setting changed: the old origin is no longer served.
      current = 'https://other.example.com';
      expect((await handle(new Request(`${origin}/_stint/index.html`))).status).toBe(403);
      expect((await uiProtocolHandler({ rendererDir: join(root, 'renderer'), origin: () => current })(new Request('https://other.example.com/_stint/'))).status).toBe(200);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('uses a persistent partition (Touch ID credentials are bound to the session)', () => {
    expect(STEP_UP_PARTITION.startsWith('persist:')).toBe(true);
  });
});

describe('macOS Touch ID', () => {
  it('names the keychain group of the entitlements file, with the signing team id', () => {
    const plist = readFileSync('build/entitlements.mac.plist', 'utf8');
    const group = webAuthnKeychainGroup('ABCDE12345')!;
    expect(plist).toContain(`<string>$(AppIdentifierPrefix)${group.slice('ABCDE12345.'.length)}</string>`);
    expect(webAuthnKeychainGroup(undefined)).toBeUndefined();
    expect(webAuthnKeychainGroup('not a team')).toBeUndefined();
  });

  it('configures WebAuthn only on macOS, signed, with the API present', () => {
    const calls: unknown[] = [];
    const app = { configureWebAuthn: (o: unknown) => void calls.push(o) };
    expect(configureWebAuthn(app, 'darwin', 'ABCDE12345')).toBe('configured');
    expect(calls).toEqual([{ touchID: { keychainAccessGroup: 'ABCDE12345.dev.stint.desktop.webauthn', promptReason: 'verify your identity on $1' } }]);
    expect(configureWebAuthn(app, 'linux', 'ABCDE12345')).toBe('unavailable');
    expect(configureWebAuthn(app, 'darwin', undefined)).toBe('unavailable');
    expect(configureWebAuthn({}, 'darwin', 'ABCDE12345')).toBe('unavailable');
    expect(calls).toHaveLength(1);
  });
});

describe('IPC trust', () => {
  const rendererDir = '/opt/Stint/resources/app.asar/dist/renderer';
  let origin: string | undefined = 'https://stint.example.com';
  const trusted = trustedOrigins({ rendererDir, stepUpOrigin: () => origin, windowIds: () => new Set([3]) });

  it('trusts our bundled page and the step-up pages only', () => {
    expect(trusted.isTrusted(`${pathToFileURL(rendererDir).href}/index.html?view=main`)).toBe(true);
    expect(trusted.isTrusted('https://stint.example.com/_stint/index.html?view=stepup')).toBe(true);
    expect(trusted.isTrusted('file:///opt/Stint/resources/app.asar/dist/renderer-evil/index.html')).toBe(false);
    expect(trusted.isTrusted('file:///tmp/index.html')).toBe(false);
    expect(trusted.isTrusted('file://remote-host/opt/Stint/resources/app.asar/dist/renderer/index.html')).toBe(false);
    expect(trusted.isTrusted('https://stint.example.com/v1/other')).toBe(false);
    expect(trusted.isTrusted('https://stint.example.com.evil.example/_stint/index.html')).toBe(false);
    expect(trusted.isTrusted('http://stint.example.com/_stint/index.html')).toBe(false);
    expect(trusted.isTrusted('not a url')).toBe(false);
    origin = undefined;
    expect(trusted.isTrusted('https://stint.example.com/_stint/index.html')).toBe(false);
  });

  it('forwards every agent event to every open window on stint:event', () => {
    const sent: Array<[string, string, unknown]> = [];
    let listener: ((e: any) => void) | undefined;
    const agent = { subscribe: (l: (e: any) => void) => { listener = l; return () => { listener = undefined; }; } };
    const windows = [{ send: (c: string, p: unknown) => void sent.push(['a', c, p]) }, { send: (c: string, p: unknown) => void sent.push(['b', c, p]) }];
    const stop = forwardAgentEvents(agent, () => windows);
    listener!({ type: 'problem', problem: { code: 'x', message: 'y' } });
    expect(sent).toEqual([
      ['a', 'stint:event', { type: 'problem', problem: { code: 'x', message: 'y' } }],
      ['b', 'stint:event', { type: 'problem', problem: { code: 'x', message: 'y' } }],
    ]);
    stop();
    expect(listener).toBeUndefined();
  });
});
