// Errors from credential providers, shaped {code, message, cause} so the lifecycle can decide what to do:
// `retryable` failures (database unreachable, a session that would not die) are retried with backoff until they
// succeed; the others are configuration or input mistakes that a retry cannot fix.

export type CredentialErrorCode =
  /** The admin connection could not be made or was lost (database down, network). Retry. */
  | 'unavailable'
  /** The database answered with an error (permissions, a bad template, a lock timeout). Usually worth a retry. */
  | 'database_error'
  /** The role still had live sessions after the termination budget. Retry. */
  | 'sessions_remain'
  /** The resource id is not configured for this provider. */
  | 'unknown_resource'
  /** The access level has no templates for this resource. */
  | 'unknown_level'
  /** The role to extend does not exist any more (it was revoked). */
  | 'not_found'
  /** The input cannot be acted on (a role name we did not create, a deadline already past). */
  | 'invalid_input';

const RETRYABLE: ReadonlySet<CredentialErrorCode> = new Set(['unavailable', 'database_error', 'sessions_remain']);

export class CredentialError extends Error {
  readonly code: CredentialErrorCode;
  readonly retryable: boolean;
  override readonly cause: unknown;

  constructor(code: CredentialErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = 'CredentialError';
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.cause = cause;
  }

  toJSON(): { code: CredentialErrorCode; message: string; retryable: boolean; cause?: string } {
    return { code: this.code, message: this.message, retryable: this.retryable, cause: describeCause(this.cause) };
  }
}

function describeCause(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

// Connection-level failures: SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown / cannot connect now),
// 53300 (too many connections), and Node socket errors. Everything else is an answer from a running database.
const NODE_NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NODE_NETWORK_CODES.has(code)) return true;
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
  }
  // pg's own messages when the socket ends or a connect times out carry no code.
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(error.message);
}

export function fromPgError(error: unknown, what: string): CredentialError {
  if (error instanceof CredentialError) return error;
  if (isConnectionFailure(error)) return new CredentialError('unavailable', `${what}: the database is unreachable`, error);
  return new CredentialError('database_error', `${what}: the database refused`, error);
}
