// Step-up from a terminal: a one-time code (TOTP) from the user's authenticator app, sent as the proof of a challenge
// the agent obtains for exactly this action. Passkeys need a browser, so a user who has only passkeys (or a policy
// that accepts only passkeys) is sent to the Stint app in words.
import type { CliAgent } from './remote-agent';
import { toAgentProblem } from '../core/agent-core';
import { isAgentError } from '../core/errors';
import type { StepUpProof } from '../../shared/contract/http';
import type { StepUpActionRef, StepUpChallenge } from '../../shared/contract/stepup';
import { CliError, explain } from './explain';
import type { Io } from './terminal';

export const CODE_PATTERN = /^[0-9]{6}$/;
const APP = 'Use the Stint app (tray or web UI) for this one';

/**
 * The step-up needs a passkey (the user has no code app, or policy accepts only passkeys), or a factor the user has
 * not set up: a terminal cannot do either, a browser can (an approver gets the server's approve page instead).
 */
export class BrowserStepUpNeeded extends CliError {}

export interface StepUpOptions {
  io: Io;
  profile: string;
  /** `--code`: used as given, never asked for again. */
  code?: string;
  /** What the action is, for the prompt and for errors ("Approving this request"). */
  doing: string;
}


async function challengeFor(agent: CliAgent, action: StepUpActionRef, o: StepUpOptions): Promise<StepUpChallenge> {
  let challenge: StepUpChallenge;
  try {
    challenge = await agent.api.stepUpChallenge({ action });
  } catch (error) {
    if (!isAgentError(error, 'stepup_not_enrolled')) throw error;
    const words = explain(toAgentProblem(error), { profile: o.profile });
    throw new BrowserStepUpNeeded(words.message, 1, words.next);
  }
  if (!challenge.methods.includes('totp')) {
    const why = challenge.policyMethods.includes('totp')
      ? 'you have set up only a passkey, and stint cannot use passkeys from a terminal'
      : 'policy accepts only a passkey or security key here, and stint cannot use those from a terminal';
    throw new BrowserStepUpNeeded(`${o.doing} needs you to verify it is you, but ${why}.`, 1, `${APP}${challenge.policyMethods.includes('totp') ? ', or set up an authenticator app there to use codes here' : ''}.`);
  }
  if (challenge.totp?.lockedUntil) {
    throw new CliError(`${o.doing} needs a one-time code, but codes are locked after too many wrong ones until ${new Date(challenge.totp.lockedUntil).toLocaleTimeString()}.`, 1, 'Wait until then, or verify with a passkey in the Stint app.');
  }
  return challenge;
}

async function askCode(o: StepUpOptions): Promise<string> {
  if (!o.io.ask) {
    throw new CliError(`${o.doing} needs a one-time code from your authenticator app, and there is no terminal to ask for it on.`, 2, 'Run the command again with --code 123456 (the current code from your authenticator app).');
  }
  for (;;) {
    const code = (await o.io.ask('Code: ')).replace(/\s+/g, '');
    if (!code) throw new CliError('Stopped: no code entered, nothing was sent.', 1);
    if (CODE_PATTERN.test(code)) return code;
    o.io.err('The code is the 6 digits your authenticator app shows.');
  }
}

/**
 * Prove `action` with a one-time code: get a challenge, take the code (--code, else the terminal), `submit` the
 * proof. At the terminal a wrong or already used code is asked for again while attempts are left.
 */
export async function proveWithCode<T>(agent: CliAgent, action: StepUpActionRef, submit: (proof: StepUpProof) => Promise<T>, o: StepUpOptions): Promise<T> {
  let challenge = await challengeFor(agent, action, o);
  if (!o.code && o.io.ask) o.io.err(`${challenge.summary}: confirm it is you with the code from your authenticator app.`);
  for (;;) {
    const code = o.code ?? await askCode(o);
    try {
      return await submit({ method: 'totp', challengeId: challenge.challengeId, code });
    } catch (error) {
      const problem = toAgentProblem(error);
      const c = problem.code;
      const retry = !o.code && !!o.io.ask && ((c === 'stepup_invalid' && (problem.attemptsLeft ?? 0) > 0) || c === 'stepup_replayed' || c === 'stepup_expired');
      if (!retry) throw error;
      const words = explain(problem, { profile: o.profile });
      o.io.err(`${words.message}${words.next ? ` ${words.next}` : ''}`);
      if (c === 'stepup_expired') challenge = await challengeFor(agent, action, o);
    }
  }
}

/** Run `act` without a proof; when the server answers that it needs a step-up, prove it with a code and run it again. */
export async function withStepUp<T>(agent: CliAgent, action: StepUpActionRef, act: (proof?: StepUpProof) => Promise<T>, o: StepUpOptions): Promise<T> {
  try {
    return await act();
  } catch (error) {
    if (!isAgentError(error, 'stepup_required')) throw error;
  }
  return proveWithCode(agent, action, act, o);
}
