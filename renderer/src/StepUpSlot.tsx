// Step-up inside the app: the step-up helper's StepUpView (renderer/src/stepup/) in a dialog, talking to the agent.
// The challenge comes from the agent's `stepUpChallenge`; an older agent without it makes the view explain that
// verification is unavailable — nothing is ever approved without it.
import { useMemo, useRef, useState } from 'react';
import type { AgentMethod } from '../../shared/contract/agent';
import type { StepUpProof } from '../../shared/contract/http';
import { StepUpChallenge, type StepUpActionRef, type StepUpProblem } from '../../shared/contract/stepup';
import { AgentCallError, type AgentClient } from './agent/client';
import type { StepUpClient } from './stepup/client';
import { StepUpView, type ActionSummary } from './stepup/StepUpView';
import { Dialog } from './ui/Dialog';

/** The agent method that hands out a challenge bound to one action. */
const CHALLENGE_METHOD = 'stepUpChallenge';

function problemOf(error: unknown): StepUpProblem {
  if (error instanceof AgentCallError) {
    if (error.code === 'unknown_method') {
      return { type: 'about:blank', title: 'Not available', status: 501, code: 'unavailable', detail: 'This version of the Stint agent can’t ask for verification yet, so nothing was sent.' };
    }
    if (error.server) {
      // The server's own words and numbers: the view explains wrong codes with attempts left, lockouts, expiry.
      return { type: 'about:blank', title: 'Not accepted', detail: error.message, ...error.server };
    }
    return { type: 'about:blank', title: 'Not accepted', status: 400, code: error.code, detail: error.message };
  }
  return { type: 'about:blank', title: 'Cannot reach Stint', status: 0, code: 'agent_unreachable', detail: 'Lost the connection to the Stint agent.' };
}

/** A StepUpClient over the AgentApi: the challenge from the agent, the proof submitted by `submit`. */
export function agentStepUpClient(client: AgentClient, submit: (proof: StepUpProof) => Promise<unknown>): StepUpClient {
  const loose = client.call as unknown as (method: AgentMethod | typeof CHALLENGE_METHOD, input: unknown) => Promise<unknown>;
  return {
    getChallenge: async (action) => {
      try {
        return { ok: true, value: StepUpChallenge.parse(await loose(CHALLENGE_METHOD, { action })) };
      } catch (error) {
        return { ok: false, problem: problemOf(error) };
      }
    },
    submitProof: async (proof) => {
      try {
        return { ok: true, value: await submit(proof) };
      } catch (error) {
        return { ok: false, problem: problemOf(error) };
      }
    },
  };
}

export interface StepUpSlotProps {
  client: AgentClient;
  action: StepUpActionRef;
  summary: ActionSummary;
  /** Completes the action with the proof (submitStepUp, or approve with `stepUp`). */
  submit: (proof: StepUpProof) => Promise<unknown>;
  onDone: (result: unknown) => void;
  onCancel: () => void;
  onEnroll?: () => void;
}

export function StepUpSlot({ client, action, summary, submit, onDone, onCancel, onEnroll }: StepUpSlotProps) {
  // StepUpView fetches a new challenge whenever `api` or `action` change: keep both stable for this dialog.
  const submitRef = useRef(submit);
  submitRef.current = submit;
  const api = useMemo(() => agentStepUpClient(client, (proof) => submitRef.current(proof)), [client]);
  const [stableAction] = useState(action);
  return (
    <Dialog labelledBy="stepup-title" onClose={onCancel} className="stepup-dialog">
      <StepUpView api={api} action={stableAction} summary={summary} onDone={onDone} onCancel={onCancel} onEnroll={onEnroll} />
    </Dialog>
  );
}
