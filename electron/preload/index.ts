// The preload exposes exactly one function per AgentApi method (never a generic invoke/send), typed from the
// contract, plus `onEvent` for the agent's event stream. `satisfies` makes a method added to the contract and
// missing here a type error. Results come back as `{ok, value | error}` and are unwrapped here so the renderer
// sees a rejected promise carrying `{code, message}`.
import { contextBridge, ipcRenderer } from 'electron';
import type { AgentEvent, AgentInput, AgentMethod, AgentOutput } from '../../shared/contract/agent';

type Result<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

function call<M extends AgentMethod>(method: M) {
  return async (input: AgentInput<M>): Promise<AgentOutput<M>> => {
    const result = (await ipcRenderer.invoke(`stint:${method}`, input)) as Result<AgentOutput<M>>;
    if (result.ok) return result.value;
    throw Object.assign(new Error(result.error.message), { code: result.error.code });
  };
}

const api = {
  getState: call('getState'),
  signIn: call('signIn'),
  cancelSignIn: call('cancelSignIn'),
  signOut: call('signOut'),
  refresh: call('refresh'),
  createRequest: call('createRequest'),
  cancelRequest: call('cancelRequest'),
  submitStepUp: call('submitStepUp'),
  approve: call('approve'),
  deny: call('deny'),
  connect: call('connect'),
  connectionUri: call('connectionUri'),
  copyConnectionUri: call('copyConnectionUri'),
  revealPassword: call('revealPassword'),
  openPsql: call('openPsql'),
  extend: call('extend'),
  release: call('release'),
  stepUpChallenge: call('stepUpChallenge'),
  stepUpStatus: call('stepUpStatus'),
  listCredentials: call('listCredentials'),
  removeCredential: call('removeCredential'),
  registerPasskeyOptions: call('registerPasskeyOptions'),
  registerPasskeyVerify: call('registerPasskeyVerify'),
  enrollTotp: call('enrollTotp'),
  confirmTotp: call('confirmTotp'),
  history: call('history'),
  getSettings: call('getSettings'),
  updateSettings: call('updateSettings'),
} satisfies { [M in AgentMethod]: (input: AgentInput<M>) => Promise<AgentOutput<M>> };

contextBridge.exposeInMainWorld('stint', Object.freeze({
  ...api,
  onEvent: (listener: (event: AgentEvent) => void) => {
    const handler = (_event: unknown, payload: AgentEvent) => listener(payload);
    ipcRenderer.on('stint:event', handler);
    return () => ipcRenderer.removeListener('stint:event', handler);
  },
}));
