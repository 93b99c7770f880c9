// What every view needs: the agent, its latest state, and the app's shared actions (navigate, open a dialog,
// show a toast, run a call with its failure shown in plain words).
import { createContext, useContext } from 'react';
import type { AgentInput, AgentMethod, AgentOutput, AgentSettings, AgentState } from '../../shared/contract/agent';
import type { AgentClient } from './agent/client';
import type { Toast } from './useAgent';

export type View = 'signin' | 'resources' | 'waiting' | 'active' | 'approvals' | 'history' | 'admin' | 'settings';

export type DialogSpec =
  | { kind: 'request'; resourceId: string }
  /** `resume`: taking back grant `grantId` left from before; its challenge is for the grant's request (`requestId`). */
  | { kind: 'stepup'; action: 'request' | 'approve' | 'resume'; requestId: string; grantId?: string; summary?: string; comment?: string }
  | { kind: 'extend'; grantId: string }
  | { kind: 'release'; grantId: string }
  | { kind: 'approve'; requestId: string }
  | { kind: 'deny'; requestId: string };

export interface AppContext {
  client: AgentClient;
  state: AgentState;
  settings?: AgentSettings;
  setSettings: (settings: AgentSettings) => void;
  go: (view: View) => void;
  open: (dialog: DialogSpec) => void;
  close: () => void;
  toast: (toast: Omit<Toast, 'key'>) => void;
  alert: (message: string) => void;
  /** Call the agent; on failure show the reason as an alert and resolve undefined. */
  run: <M extends AgentMethod>(method: M, input: AgentInput<M>) => Promise<AgentOutput<M> | undefined>;
}

export const AppContextValue = createContext<AppContext | null>(null);

export function useApp(): AppContext {
  const ctx = useContext(AppContextValue);
  if (!ctx) throw new Error('useApp outside the connected app');
  return ctx;
}
