// The user checks the router attaches (http/router.ts) to routes declared 'user' or 'admin'. Who may call each route
// is no longer a table of its own: it is the `access` of each route in the route list (http/table.ts).
import type { Metrics } from '../metrics';
import type { TokenVerifier } from '../identity/verify';
import type { Guard } from './router';
import { sendProblem } from './problem';

/** The server's user check: a valid access token for the configured issuer and audience, or 401 (503 if the IdP is down). */
export function userTokenGuard(verifier: TokenVerifier, metrics: Metrics): Guard {
  return async (request, reply) => {
    const outcome = await verifier.verify(request.headers.authorization);
    if (outcome.ok) {
      request.user = { ...outcome.user, tokenExpiresAt: outcome.expiresAt };
      return;
    }
    metrics.authFailures.inc({ code: outcome.code });
    const status = outcome.code === 'idp_unavailable' ? 503 : 401;
    // RFC 6750: no error attribute when no token was sent at all.
    const challenge = outcome.code === 'token_missing' ? 'Bearer realm="stint"' : `Bearer realm="stint", error="invalid_token", error_description="${outcome.message.replace(/"/g, "'")}"`;
    if (status === 401) reply.header('www-authenticate', challenge);
    return sendProblem(reply, { status, code: outcome.code, message: outcome.message });
  };
}

/**
 * For a route set served as a plugin inside a host that authenticates users itself (an earlier onRequest hook sets
 * request.user): the routes still refuse a request nobody authenticated, instead of running without a user.
 */
export const hostAuthenticatedUser: Guard = async (request, reply) => {
  if (request.user) return;
  reply.header('www-authenticate', 'Bearer realm="stint"');
  return sendProblem(reply, { status: 401, code: 'token_missing', message: 'no user was authenticated for this request' });
};
