// Step-up inside the app: the step-up helper's StepUpView (renderer/src/stepup/) in a dialog, talking to the agent.
// The challenge comes from the agent's `stepUpChallenge`; an older agent without it makes the view explain that
// verification is unavailable — nothing is ever approved without it.
import { useMemo, useRef, useState } from 'react';
import type { AgentMethod } from '../../shared/contract/agent';
import type { StepUpProof } from '../../shared/contract/http';
import { localProblem, type AgentProblem } from '../../shared/contract/problem';
import { StepUpChallenge, type StepUpActionRef } from '../../shared/contract/stepup';
import { AgentCallError, type AgentClient } from './agent/client';
import type { StepUpClient } from './stepup/client';
import { StepUpView, type ActionSummary } from './stepup/StepUpView';
import { Dialog } from './ui/Dialog';

/** The agent method that hands out a challenge bound to one action. */
const CHALLENGE_METHOD = 'stepUpChallenge';

/** A failed call as the step-up view explains it: the agent's problem (the server's own, attempts left and all). */
function problemOf(error: unknown): AgentProblem {
  if (error instanceof AgentCallError) return error.problem;
  return localProblem('agent_unreachable', 'Lost the connection to the Stint agent.');
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
