// The admin console's AgentApi methods (issue #25): each is one call to the grant server with the agent's session
// (the renderer never holds a token), and the server decides who is an admin. A revoke of one of this user's own
// grants also reaches this agent's local access through the server's event, like any other revoke.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentInput, AgentOutput, agentApi } from '../../shared/contract/agent';
import type { ServerLink } from './server-link';

type AdminMethod = 'adminLive' | 'adminRevoke' | 'adminAudit' | 'adminAuditVerify' | 'adminAuditExport' | 'adminWebhooks' | 'adminPolicyHistory';

export interface AdminApiUnits {
  link: Pick<ServerLink, 'api'>;
  /** Where exports are saved (the host's choice: the user's Downloads folder for the tray app). */
  exportDir: string;
  now: () => number;
  /** The contract's parse of a method's input (agent-api.ts). */
  parse: <M extends AdminMethod>(method: M, input: AgentInput<M>) => ReturnType<(typeof agentApi)[M]['input']['parse']>;
}

type AdminHandlers = { [M in AdminMethod]: (input: AgentInput<M>) => Promise<AgentOutput<M>> };

export function adminApiHandlers(u: AdminApiUnits): AdminHandlers {
  return {
    adminLive: async () => u.link.api().adminLive(),
    adminRevoke: async (input) => {
      const { grantId, reason } = u.parse('adminRevoke', input);
      return { grant: await u.link.api().revoke(grantId, reason) };
    },
    adminAudit: async (input) => u.link.api().adminAudit(u.parse('adminAudit', input)),
    adminAuditVerify: async (input) => {
      const { run } = u.parse('adminAuditVerify', input);
      return run ? u.link.api().adminVerify() : u.link.api().adminVerifyStatus();
    },
    adminAuditExport: async (input) => {
      const query = u.parse('adminAuditExport', input);
      await mkdir(u.exportDir, { recursive: true });
      const stamp = new Date(u.now()).toISOString().replace(/[:.]/g, '-');
      const path = join(u.exportDir, `stint-audit-${stamp}.${query.format}`);
      const bytes = await u.link.api().downloadAuditExport(query, path);
      return { path, bytes };
    },
    adminWebhooks: async () => u.link.api().adminWebhooks(),
    adminPolicyHistory: async (input) => u.link.api().adminPolicyHistory(u.parse('adminPolicyHistory', input)),
  };
}
