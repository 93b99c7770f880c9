// Expected failures are values: `Outcome<T>` is either the result or a DomainError {status, code, message}.
// The HTTP layer turns a DomainError into an RFC 9457 problem+json answer; nothing else reaches a client.
export interface DomainError {
  status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 428 | 429 | 503;
  code: string;
  message: string;
  /** Audit the attempt as a refused action (authorization failures and illegal transitions). */
  audit?: boolean;
  errors?: { path: string; message: string }[];
  /** Extra problem members (e.g. which step-up methods are accepted). */
  extra?: Record<string, unknown>;
  cause?: unknown;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: DomainError };

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const fail = <T = never>(status: DomainError['status'], code: string, message: string, more: Partial<DomainError> = {}): Outcome<T> =>
  ({ ok: false, error: { status, code, message, ...more } });

const TITLES: Record<number, string> = {
  400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found', 405: 'Method not allowed', 406: 'Not acceptable',
  409: 'Conflict', 410: 'Gone', 413: 'Payload too large', 415: 'Unsupported media type', 422: 'Unprocessable content',
  428: 'Precondition required', 429: 'Too many requests', 500: 'Internal server error', 503: 'Service unavailable',
};

export function problemBody(error: Pick<DomainError, 'status' | 'code' | 'message' | 'errors' | 'extra'>): Record<string, unknown> {
  return {
    type: `https://stint.dev/problems/${error.code}`,
    title: TITLES[error.status] ?? 'Error',
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(error.errors ? { errors: error.errors } : {}),
    ...(error.extra ?? {}),
  };
}
