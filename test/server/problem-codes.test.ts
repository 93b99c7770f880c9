// The one problem table (shared/contract/problem.ts) against the server's sources (#20): every status a refusal is
// written with must be the table's status for its code, and every code the server builds must be in the union.
// The type checker already refuses a code outside the union where a DomainError is made; the status it cannot see,
// and the step-up routes and the token verifier build their codes without a DomainError — so this reads the source.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROBLEMS, Problem, ProblemCode, problemStatus, problemType } from '../../shared/contract/problem';
import { StepUpFailureCode } from '../../shared/contract/stepup';
import { stepUpFailureStatus } from '../../server/stepup';
import { problemBody } from '../../server/errors';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'dev-idp' ? [] : sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** A refusal written with a literal status and code, wherever it is in server/. */
const WITH_STATUS = [
  /\bfail(?:<[^>]*>)?\(\s*(\d{3}),\s*'([a-z_]+)'/g, // fail(409, 'illegal_transition', …) — DomainError
  /\bstatus: (\d{3})(?: as const)?, code: '([a-z_]+)'/g, // refuse(…, { status, code }), sendProblem(reply, { status, code })
  /\bproblem\(\s*(\d{3}),\s*'([a-z_]+)'/g, // the step-up routes' problem(404, 'credential_not_found', …)
  /\.code\((\d{3})\)\.send\(\{ code: '([a-z_]+)'/g, // the bastion routes' JSON refusals
];

interface Found { where: string; status: number; code: string }

function refusals(): Found[] {
  const found: Found[] = [];
  for (const file of sources('server')) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of WITH_STATUS) {
      for (const match of text.matchAll(pattern)) {
        const line = text.slice(0, match.index).split('\n').length;
        found.push({ where: `${file}:${line}`, status: Number(match[1]), code: match[2]! });
      }
    }
  }
  return found;
}

describe('problem codes', () => {
  it('every literal refusal in server/ uses a code of the union, with the table\'s status', () => {
    const found = refusals();
    // A pattern that silently stopped matching would pass everything: there are dozens of these.
    expect(found.length).toBeGreaterThan(60);
    const wrong = found
      .filter((f) => !ProblemCode.safeParse(f.code).success || problemStatus(f.code as ProblemCode) !== f.status)
      .map((f) => `${f.where}: ${f.code} answered ${f.status}, the table says ${ProblemCode.safeParse(f.code).success ? problemStatus(f.code as ProblemCode) : 'no such code'}`);
    expect(wrong).toEqual([]);
  });

  it('codes built without a DomainError (token verifier, step-up service) are in the union', () => {
    const files = ['server/identity/verify.ts', ...sources('server/stepup')];
    const codes = new Set(files.flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/\bcode: '([a-z_]+)'/g)].map((m) => m[1]!)));
    expect(codes.size).toBeGreaterThan(10);
    expect([...codes].filter((code) => !ProblemCode.safeParse(code).success)).toEqual([]);
  });

  it('a refused step-up proof answers with the table\'s status (the lifecycle and the step-up routes share it)', () => {
    for (const code of StepUpFailureCode.options) expect([code, stepUpFailureStatus(code)]).toEqual([code, problemStatus(code)]);
  });

  it('a DomainError becomes the one Problem: the type URI and title of its code', () => {
    const body = problemBody({ status: 409, code: 'request_expired', message: 'the activation window has passed' });
    expect(Problem.parse(body)).toEqual({
      type: 'https://stint.dev/problems/request_expired', title: PROBLEMS.request_expired.title, status: 409, code: 'request_expired', detail: 'the activation window has passed',
    });
    expect(problemType('stepup_locked')).toBe('https://stint.dev/problems/stepup_locked');
  });

  it('every code has a title, and a status exactly when the grant server answers with it', () => {
    for (const code of ProblemCode.options) {
      const entry = PROBLEMS[code] as { title: string; status?: number; origin?: string };
      expect(entry.title.length, code).toBeGreaterThan(0);
      expect(entry.status !== undefined, code).toBe(entry.origin === undefined);
    }
  });
});
