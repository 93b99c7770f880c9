// The message framing used where the AgentApi crosses a socket (the web host's WebSocket). Electron IPC does not need
// it (ipcMain.handle frames calls itself), but validates the same method payloads from shared/contract/agent.ts.
import { z } from 'zod';
import { AgentEvent, AgentProblem } from './agent';

export const WireHello = z.strictObject({ type: z.literal('hello'), token: z.string().min(16).max(256) });
export const WireCall = z.strictObject({ type: z.literal('call'), id: z.number().int().nonnegative(), method: z.string().max(64), input: z.unknown() });
export const ClientMessage = z.discriminatedUnion('type', [WireHello, WireCall]);
export type ClientMessage = z.infer<typeof ClientMessage>;

// A result is a union on `ok` nested under `type` (zod refuses one discriminator value twice in a union).
export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('welcome') }),
  z.discriminatedUnion('ok', [
    z.object({ type: z.literal('result'), id: z.number().int(), ok: z.literal(true), output: z.unknown() }),
    z.object({ type: z.literal('result'), id: z.number().int(), ok: z.literal(false), error: AgentProblem }),
  ]),
  z.object({ type: z.literal('event'), event: AgentEvent }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
