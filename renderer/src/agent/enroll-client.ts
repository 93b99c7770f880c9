// The enrollment views' EnrollClient over the AgentApi: the agent calls the server's /v1/stepup routes with its
// session, so the renderer never holds a token. Failures become problems the views explain in plain words.
import { localProblem, type AgentProblem } from '../../../shared/contract/problem';
import type { EnrollClient, Outcome } from '../stepup/client';
import { AgentCallError, type AgentClient } from './client';

function problemOf(error: unknown): AgentProblem {
  if (error instanceof AgentCallError) return error.problem;
  return localProblem('agent_unreachable', 'Lost the connection to the Stint agent.');
}

async function outcome<T>(call: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (error) {
    return { ok: false, problem: problemOf(error) };
  }
}

export function agentEnrollClient(client: AgentClient): EnrollClient {
  return {
    status: () => outcome(() => client.call('stepUpStatus', {})),
    listCredentials: () => outcome(async () => (await client.call('listCredentials', {})).credentials),
    removeCredential: (id, stepUp) => outcome(async () => { await client.call('removeCredential', { id, ...(stepUp ? { stepUp } : {}) }); }),
    registerOptions: (body) => outcome(() => client.call('registerPasskeyOptions', body)),
    registerVerify: (body) => outcome(() => client.call('registerPasskeyVerify', body)),
    totpEnroll: (body) => outcome(() => client.call('enrollTotp', body)),
    totpConfirm: (code) => outcome(() => client.call('confirmTotp', { code })),
    getChallenge: (action) => outcome(() => client.call('stepUpChallenge', { action })),
  };
}
