// Every failure the agent reports is `{ code, message, cause }`: `code` for programs (and the AgentApi contract),
// `message` in plain words for the user (never containing a secret), `cause` for logs and debugging.
export type AgentErrorCode =
  | 'keychain_unavailable'
  | 'keychain_locked'
  | 'login_cancelled'
  | 'login_timeout'
  | 'login_failed'
  | 'idp_unreachable'
  | 'not_signed_in'
  | 'session_expired'
  | 'server_unreachable'
  | 'server_error'
  | 'malformed_response'
  | 'bastion_unreachable'
  | 'bastion_auth_failed'
  | 'bastion_host_key_mismatch'
  | 'tunnel_failed'
  | 'port_unavailable'
  | 'not_found'
  | 'invalid_input'
  | 'launcher_failed';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  override readonly cause?: unknown;
  /** HTTP status or Problem code from the server, when the error came from it. */
  readonly detail?: Record<string, unknown>;

  constructor(code: AgentErrorCode, message: string, cause?: unknown, detail?: Record<string, unknown>) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.cause = cause;
    this.detail = detail;
  }

  toJSON(): { code: AgentErrorCode; message: string; detail?: Record<string, unknown> } {
    // `cause` stays out of anything serialised to a shell: it may hold library internals.
    return { code: this.code, message: this.message, ...(this.detail ? { detail: this.detail } : {}) };
  }
}

export function isAgentError(error: unknown, code?: AgentErrorCode): error is AgentError {
  return error instanceof AgentError && (code === undefined || error.code === code);
}
