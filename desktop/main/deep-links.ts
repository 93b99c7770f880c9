// stint:// deep links. Any program (a web page, a chat message) can open one, so the link only ever OPENS a view
// where the user decides; it never acts. Only two shapes are accepted, everything else is refused:
//   stint://request/<resource id>   → the request form for that resource
//   stint://approve/<request id>    → the approval view for that request (approving still needs the user, and
//                                     step-up where policy says)
import { Id } from '../../shared/contract/http';

export const PROTOCOL = 'stint';

export type DeepLink =
  | { view: 'request'; params: { resourceId: string } }
  | { view: 'approve'; params: { requestId: string } };

export type DeepLinkResult = { ok: true; link: DeepLink } | { ok: false; reason: string };

export function parseDeepLink(raw: string): DeepLinkResult {
  if (typeof raw !== 'string' || raw.length > 512) return { ok: false, reason: 'not a Stint link' };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: 'not a URL' };
  }
  if (url.protocol !== `${PROTOCOL}:`) return { ok: false, reason: 'not a Stint link' };
  if (url.username || url.password || url.port) return { ok: false, reason: 'unexpected parts in the link' };
  if (url.search || url.hash) return { ok: false, reason: 'unexpected parts in the link' };
  const segments = url.pathname.split('/');
  // "stint://request/x" parses as host "request", path "/x": exactly one non-empty segment after the host.
  if (segments.length !== 2 || segments[0] !== '') return { ok: false, reason: 'unexpected path' };
  let id: string;
  try {
    id = decodeURIComponent(segments[1]!);
  } catch {
    return { ok: false, reason: 'malformed id' };
  }
  if (!Id.safeParse(id).success) return { ok: false, reason: 'malformed id' };
  switch (url.hostname.toLowerCase()) {
    case 'request':
      return { ok: true, link: { view: 'request', params: { resourceId: id } } };
    case 'approve':
      return { ok: true, link: { view: 'approve', params: { requestId: id } } };
    default:
      return { ok: false, reason: 'unknown link' };
  }
}

/** Windows and Linux hand a deep link to the running instance in the second instance's argv. */
export function deepLinkFromArgv(argv: readonly string[]): string | undefined {
  return argv.find((arg) => arg.toLowerCase().startsWith(`${PROTOCOL}:`));
}
