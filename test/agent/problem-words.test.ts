// Every code of the one problem union has words in both places a person reads them (#20): the CLI (explain.ts) and
// the renderer (problem-words.ts). Both are tables keyed by ProblemCode, so a missing entry already fails the type
// check; this proves each entry says something, and that the server's log-style `detail` is never what the UI shows
// for a server code.
import { describe, expect, it } from 'vitest';
import { localProblem, PROBLEMS, ProblemCode, problemStatus } from '../../shared/contract/problem';
import { explain } from '../../agent/cli/explain';
import { problemWords } from '../../renderer/src/problem-words';
import { explainProblem } from '../../renderer/src/stepup/explain';

const SERVER_DETAIL = 'the server said this for its log';
const problemOf = (code: ProblemCode) => localProblem(code, problemStatus(code) ? SERVER_DETAIL : 'The agent says this in plain words.', problemStatus(code) ? { status: problemStatus(code) } : {});

describe('words for every problem code', () => {
  it('has as many codes as the table, none twice', () => {
    expect(ProblemCode.options).toEqual(Object.keys(PROBLEMS));
    expect(new Set(ProblemCode.options).size).toBe(ProblemCode.options.length);
  });

  it.each(ProblemCode.options)('%s: the CLI says what happened (and for a server code, in its own words)', (code) => {
    const words = explain(problemOf(code), { profile: 'cli' });
    expect(words.message).toMatch(/^\S.*[.!?)]$/s);
    expect(`${words.message} ${words.next ?? ''}`).not.toMatch(/undefined|\[object /);
    if (problemStatus(code)) expect(words.message).not.toBe(`${SERVER_DETAIL}.`);
  });

  it.each(ProblemCode.options)('%s: the renderer says what happened (and for a server code, in its own words)', (code) => {
    const words = problemWords(problemOf(code));
    expect(words).toMatch(/^\S.*[.!?)]$/s);
    expect(words).not.toMatch(/undefined|\[object /);
    if (problemStatus(code)) expect(words).not.toContain(SERVER_DETAIL);
  });

  it('uses the members the server sent: attempts left, locked until', () => {
    expect(problemWords(localProblem('stepup_invalid', SERVER_DETAIL, { status: 403, attemptsLeft: 1 }))).toContain('1 attempt left');
    expect(explain(localProblem('stepup_invalid', SERVER_DETAIL, { status: 403, attemptsLeft: 3 }), { profile: 'cli' }).message).toBe('That code is not right: 3 attempts left.');
    const locked = localProblem('stepup_locked', SERVER_DETAIL, { status: 429, retryAfter: new Date(Date.now() + 300_000).toISOString() });
    expect(problemWords(locked)).toMatch(/locked until \d/);
    expect(explain(locked, { profile: 'cli' }).message).toMatch(/locked until \d/);
  });

  it('the step-up view explains codes that are not step-up ones in the UI\'s words', () => {
    expect(explainProblem(localProblem('illegal_transition', SERVER_DETAIL, { status: 409 }))).toMatchObject({ kind: 'other', message: problemWords(localProblem('illegal_transition', '')) });
    expect(explainProblem(localProblem('agent_unreachable', 'Lost the connection to the Stint agent.'))).toMatchObject({ kind: 'network', message: 'Lost the connection to the Stint agent.' });
  });
});
