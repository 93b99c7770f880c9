// The admin console at the server's origin (/admin/) reaches the server, not an agent: this adapter gives the admin
// views (renderer/src/views/Admin.tsx) the AgentClient they call, implementing just the admin AgentApi methods over
// fetch to /admin/api/… with the page's session cookie, and its CSRF token on every POST. Inputs and answers are parsed
// with the same contracts the agent uses; a refusal arrives as an AgentCallError carrying the server's problem, so the
// views show it in the same words. An export is downloaded by the browser (streamed to its downloads), not saved by
// an agent.
import type { z } from 'zod';
import { agentApi, type AgentInput, type AgentMethod, type AgentOutput } from '../../shared/contract/agent';
import { AdminLive, AuditPage, AuditVerifyStatus } from '../../shared/contract/admin';
import { CSRF_HEADER, PageSession } from '../../shared/contract/approve-page';
import { GrantResult } from '../../shared/contract/http';
import { Problem } from '../../shared/contract/problem';
import { AgentCallError, type AgentClient } from '../src/agent/client';

export interface AdminPageApi {
  /** The views' client: the admin methods only (anything else is refused as not available here). */
  client: AgentClient;
  /** Who is signed in (an administrator: the server refuses the console to anyone else), and the CSRF token. */
  session(): Promise<PageSession>;
  /** Ends the page's session (the IdP's own session is the IdP's). */
  signOut(): Promise<void>;
  /** Server clock minus this computer's, from the last answer's Date header (whole seconds: enough for countdowns). */
  clockOffsetMs(): number;
}

/** A query string of the fields that are set. */
function query(fields: Record<string, string | number | undefined>): string {
  return new URLSearchParams(Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])).toString();
}

export function createAdminPageApi(base = '/admin/api'): AdminPageApi {
  let csrf = '';
  let offsetMs = 0;

  async function call<T>(method: 'GET' | 'POST', url: string, body: unknown, schema: z.ZodType<T> | null): Promise<T> {
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        credentials: 'same-origin',
        headers: method === 'POST' ? { [CSRF_HEADER]: csrf, 'content-type': 'application/json' } : {},
        ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
      });
    } catch (error) {
      throw AgentCallError.local('network_error', error instanceof Error ? error.message : String(error));
    }
    const date = Date.parse(res.headers.get('date') ?? '');
    if (Number.isFinite(date)) offsetMs = date - Date.now();
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const problem = Problem.safeParse(json);
      if (problem.success) throw new AgentCallError({ ...problem.data, status: res.status, detail: problem.data.detail ?? problem.data.title });
      throw AgentCallError.local('server_error', text.slice(0, 200) || res.statusText);
    }
    return schema ? schema.parse(json) : (undefined as T);
  }

  const session = async (): Promise<PageSession> => {
    const s = await call('GET', `${base}/session`, undefined, PageSession);
    csrf = s.csrfToken;
    return s;
  };

  type Handlers = { [M in AdminMethod]: (input: AgentInput<M>) => Promise<AgentOutput<M>> };
  const handlers: Handlers = {
    adminLive: () => call('GET', `${base}/live`, undefined, AdminLive),
    adminRevoke: (input) => {
      const { grantId, reason } = agentApi.adminRevoke.input.parse(input);
      return call('POST', `${base}/grants/${encodeURIComponent(grantId)}/revoke`, { reason }, GrantResult);
    },
    adminAudit: (input) => call('GET', `${base}/audit?${query(agentApi.adminAudit.input.parse(input))}`, undefined, AuditPage),
    adminAuditVerify: (input) => (agentApi.adminAuditVerify.input.parse(input).run
      ? call('POST', `${base}/audit/verify`, {}, AuditVerifyStatus)
      : call('GET', `${base}/audit/verify`, undefined, AuditVerifyStatus)),
    adminAuditExport: async (input) => {
      const fields = agentApi.adminAuditExport.input.parse(input);
      // A download cannot show a refusal on the page: make sure the session still holds before the browser asks.
      await session();
      const name = `stint-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.${fields.format}`;
      const link = document.createElement('a');
      link.href = `${base}/audit/export?${query(fields)}`;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      // The browser streams the file to its downloads; the page never holds it, so its size is not known here.
      return { path: `your browser’s downloads (${name})`, bytes: 0 };
    },
  };

  const client: AgentClient = {
    call: async <M extends AgentMethod>(method: M, input: AgentInput<M>): Promise<AgentOutput<M>> => {
      if (!isAdminMethod(method)) throw AgentCallError.local('internal', `${method} is not available on the admin console page`);
      return (handlers[method] as (i: unknown) => Promise<AgentOutput<M>>)(input);
    },
    // The server pushes nothing to this page: the views re-read on their own timers.
    subscribe: () => () => undefined,
  };

  return {
    client,
    session,
    // The session is the approve page's too: it ends there.
    signOut: async () => { await call<void>('POST', '/approve/api/session/end', {}, null); },
    clockOffsetMs: () => offsetMs,
  };
}

const ADMIN_METHODS = ['adminLive', 'adminRevoke', 'adminAudit', 'adminAuditVerify', 'adminAuditExport'] as const;
type AdminMethod = (typeof ADMIN_METHODS)[number];
const isAdminMethod = (method: AgentMethod): method is AdminMethod => (ADMIN_METHODS as readonly string[]).includes(method);
