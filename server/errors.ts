// Expected failures are values: `Outcome<T>` is either the result or a DomainError {status, code, message}.
// The HTTP layer turns a DomainError into an RFC 9457 problem+json answer; nothing else reaches a client.
// Codes are the one ProblemCode union (shared/contract/problem.ts), whose table also holds each code's status:
// test/server/problem-codes.test.ts holds every literal `fail(status, code…)` in server/ to it.
import { PROBLEMS, problemType, type Problem, type ProblemCode } from '../shared/contract/problem';

export interface DomainError {
  status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 428 | 429 | 503;
  code: ProblemCode;
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
export const fail = <T = never>(status: DomainError['status'], code: ProblemCode, message: string, more: Partial<DomainError> = {}): Outcome<T> =>
  ({ ok: false, error: { status, code, message, ...more } });

export function problemBody(error: Pick<DomainError, 'code' | 'message' | 'errors' | 'extra'> & { status: DomainError['status'] | 500 }): Problem & Record<string, unknown> {
  return {
    type: problemType(error.code),
    title: PROBLEMS[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(error.errors ? { errors: error.errors } : {}),
    ...(error.extra ?? {}),
  };
}
