// Every failure the agent reports is an AgentError: the in-process throwable form of the one problem shape
// (shared/contract/problem.ts). `code` for programs (one ProblemCode union with the server's codes), `message` in
// plain words for the user (never containing a secret), `cause` for logs and debugging, and the problem's other
// members — when the grant server refused, everything it said (status, attemptsLeft, stepUp…), passed on unchanged.
import { localProblem, type AgentProblem, type ProblemCode, type ProblemMembers } from '../../shared/contract/problem';

export class AgentError extends Error {
  readonly code: ProblemCode;
  override readonly cause?: unknown;
  /** The problem's members besides code and words: `status` only when the grant server answered. */
  readonly members: ProblemMembers;

  constructor(code: ProblemCode, message: string, cause?: unknown, members: ProblemMembers = {}) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.cause = cause;
    this.members = members;
  }

  /** A problem as it came (from the server, or across a socket from another agent): the same code and members. */
  static fromProblem(problem: Omit<AgentProblem, 'detail'> & { detail?: string }, cause?: unknown): AgentError {
    const { code, detail, ...members } = problem;
    return new AgentError(code, detail ?? members.title, cause, members);
  }

  /** The HTTP status, when the grant server answered with this problem. */
  get status(): number | undefined {
    return this.members.status;
  }

  toProblem(): AgentProblem {
    return localProblem(this.code, this.message, this.members);
  }

  toJSON(): AgentProblem {
    // `cause` stays out of anything serialised to a shell: it may hold library internals.
    return this.toProblem();
  }
}

export function isAgentError(error: unknown, code?: ProblemCode): error is AgentError {
  return error instanceof AgentError && (code === undefined || error.code === code);
}
