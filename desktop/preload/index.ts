// The preload exposes exactly one function per AgentApi method (never a generic invoke/send), typed from the
// contract, plus `onEvent` for the agent's event stream. `satisfies` makes a method added to the contract and
// missing here a type error. Results cross as the `{ok, value | error}` union the main process answered: the
// contextBridge clones plain objects, but a thrown Error reaches the page with its message only — its `code` and
// the server's problem were lost that way (every error became `internal` in the app). The renderer unwraps it.
import { contextBridge, ipcRenderer } from 'electron';
import type { AgentEvent, AgentInput, AgentMethod, AgentOutput, AgentResult } from '../../shared/contract/agent';

function call<M extends AgentMethod>(method: M) {
  return (input: AgentInput<M>): Promise<AgentResult<AgentOutput<M>>> => ipcRenderer.invoke(`stint:${method}`, input);
}

const api = {
  getState: call('getState'),
  signIn: call('signIn'),
  cancelSignIn: call('cancelSignIn'),
  signOut: call('signOut'),
  refresh: call('refresh'),
  createRequest: call('createRequest'),
  cancelRequest: call('cancelRequest'),
  activateRequest: call('activateRequest'),
  submitStepUp: call('submitStepUp'),
  approve: call('approve'),
  deny: call('deny'),
  connect: call('connect'),
  connectionUri: call('connectionUri'),
  execEnv: call('execEnv'),
  copyConnectionUri: call('copyConnectionUri'),
  revealPassword: call('revealPassword'),
  openPsql: call('openPsql'),
  extend: call('extend'),
  release: call('release'),
  resumeGrant: call('resumeGrant'),
  stepUpChallenge: call('stepUpChallenge'),
  stepUpStatus: call('stepUpStatus'),
  listCredentials: call('listCredentials'),
  removeCredential: call('removeCredential'),
  registerPasskeyOptions: call('registerPasskeyOptions'),
  registerPasskeyVerify: call('registerPasskeyVerify'),
  enrollTotp: call('enrollTotp'),
  confirmTotp: call('confirmTotp'),
  history: call('history'),
  adminLive: call('adminLive'),
  adminRevoke: call('adminRevoke'),
  adminAudit: call('adminAudit'),
  adminAuditVerify: call('adminAuditVerify'),
  adminAuditExport: call('adminAuditExport'),
  adminWebhooks: call('adminWebhooks'),
  adminPolicyHistory: call('adminPolicyHistory'),
  listReviews: call('listReviews'),
  recordReview: call('recordReview'),
  getSettings: call('getSettings'),
  updateSettings: call('updateSettings'),
} satisfies { [M in AgentMethod]: (input: AgentInput<M>) => Promise<AgentResult<AgentOutput<M>>> };

contextBridge.exposeInMainWorld('stint', Object.freeze({
  ...api,
  onEvent: (listener: (event: AgentEvent) => void) => {
    const handler = (_event: unknown, payload: AgentEvent) => listener(payload);
    ipcRenderer.on('stint:event', handler);
    return () => ipcRenderer.removeListener('stint:event', handler);
  },
}));
