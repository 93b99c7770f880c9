// One ipcMain.handle per AgentApi method, registered from the contract. Each call is checked before it reaches the
// core: it must come from one of our windows' main frame at our own origin, and its payload must parse with the
// method's input schema. Errors cross as the one problem shape (shared/contract/problem.ts; no stacks, no causes).
// Only types come from 'electron' here, so this logic runs and is tested under plain Node.
import { pathToFileURL } from 'node:url';
import type { IpcMainInvokeEvent } from 'electron';
import { agentApi, type AgentMethod, type AgentResult } from '../../shared/contract/agent';
import type { AgentCore } from '../../agent/core/agent-core';
import { toAgentProblem } from '../../agent/core/agent-core';
import { localProblem } from '../../shared/contract/problem';

export const IPC_PREFIX = 'stint:';
export const channelFor = (method: AgentMethod) => `${IPC_PREFIX}${method}`;

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcMainInvokeEvent, ...args: unknown[]) => unknown): void;
  removeHandler(channel: string): void;
}

/** Where our UI is loaded from: the bundled renderer (file://…/dist/renderer/) or the step-up origin. */
export interface TrustedOrigins {
  isTrusted(url: string): boolean;
  /** webContents ids of windows we created. */
  windowIds(): Set<number>;
}


export function senderProblem(event: Pick<IpcMainInvokeEvent, 'sender' | 'senderFrame'>, trusted: TrustedOrigins): string | undefined {
  const frame = event.senderFrame;
  if (!frame) return 'the calling frame is gone';
  if (!trusted.windowIds().has(event.sender.id)) return 'the call did not come from a Stint window';
  if (frame.parent) return 'the call came from a sub-frame';
  if (!trusted.isTrusted(frame.url)) {
    let origin = 'unknown';
    try { origin = new URL(frame.url).origin; } catch { /* keep 'unknown' */ }
    return `the calling page is not Stint's own (${origin})`;
  }
  return undefined;
}

export function registerAgentIpc(ipcMain: IpcMainLike, agent: AgentCore, trusted: TrustedOrigins): () => void {
  const methods = Object.keys(agentApi) as AgentMethod[];
  for (const method of methods) {
    const contract = agentApi[method];
    ipcMain.handle(channelFor(method), async (event, payload): Promise<AgentResult<unknown>> => {
      const refused = senderProblem(event, trusted);
      if (refused) return { ok: false, error: localProblem('forbidden_sender', `Refused: ${refused}.`) };
      const input = contract.input.safeParse(payload ?? {});
      if (!input.success) {
        return { ok: false, error: localProblem('invalid_input', input.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')) };
      }
      try {
        const handler = agent.api[method] as (input: unknown) => Promise<unknown>;
        return { ok: true, value: await handler(input.data) };
      } catch (error) {
        return { ok: false, error: toAgentProblem(error) };
      }
    });
  }
  return () => methods.forEach((method) => ipcMain.removeHandler(channelFor(method)));
}

/**
 * Our UI's own pages: files under the bundled renderer directory (file://), and the step-up origin's `/_stint/`
 * pages (served from the same files by the step-up partition, see stepup-origin.ts).
 */
export function trustedOrigins(options: { rendererDir: string; stepUpOrigin: () => string | undefined; windowIds: () => Set<number> }): TrustedOrigins {
  const fileRoot = pathToFileURL(options.rendererDir).href.replace(/\/?$/, '/');
  return {
    windowIds: options.windowIds,
    isTrusted(raw) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        return false;
      }
      if (url.protocol === 'file:') return !url.host && url.href.startsWith(fileRoot);
      const origin = options.stepUpOrigin();
      return !!origin && url.origin === origin && url.pathname.startsWith('/_stint/') && !url.username && !url.password;
    },
  };
}

export interface EventSink {
  send(channel: string, payload: unknown): void;
}

export const EVENT_CHANNEL = 'stint:event';

/** Every agent event (state snapshots, notifications, problems) to every open Stint window. */
export function forwardAgentEvents(agent: Pick<AgentCore, 'subscribe'>, targets: () => Iterable<EventSink>): () => void {
  return agent.subscribe((event) => {
    for (const target of targets()) target.send(EVENT_CHANNEL, event);
  });
}
