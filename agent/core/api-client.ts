// Typed client for the grant server. Every response is parsed with the contract's schemas: a malformed answer is a
// typed `malformed_response` error the agent reports, never an exception from deep inside the UI. Every response's
// Date header feeds the deadline scheduler's clock offset. POSTs carry an Idempotency-Key so one retry after a
// network failure cannot act twice.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { z } from 'zod';
import { AdminLive, AuditPage, AuditVerifyStatus, type AuditExportFormat, type AuditFilterFields } from '../../shared/contract/admin';
import {
  ChallengeBody, CredentialInfo, CredentialList, RegisterOptionsBody, RegisterOptionsResult, RegisterVerifyBody, StepUpChallenge,
  StepUpStatus, TotpConfirmBody, TotpConfirmResult, TotpEnrollBody, TotpEnrollResult,
} from '../../shared/contract/stepup';
import {
  ActivateResult, AuditList, CreateRequestResult, ExtendResult, GrantList, GrantResult, HeartbeatResult, Me, Problem, RekeyResult, RequestList, RequestResult,
  ResourceList, type CreateRequestBody, type StepUpProof,
} from '../../shared/contract/http';
import { PolicyHistory } from '../../shared/contract/policy';
import { ReviewList, ReviewResult, type ReviewOutcome } from '../../shared/contract/reviews';
import { WebhookStatusList } from '../../shared/contract/webhooks';
import { AgentError } from './errors';

export interface ApiClientOptions {
  baseUrl: string;
  accessToken: () => Promise<string>;
  /** Called once after a 401, to get a fresh token (single-flight in the Session). */
  refreshAccessToken?: () => Promise<string>;
  deviceId: string;
  fetch?: typeof fetch;
  /** The server's clock from a response: `uncertaintyMs` is 1000 for the Date header (whole seconds). */
  onServerTime?: (serverMs: number, receivedAtLocalMs: number, uncertaintyMs: number) => void;
  /** Reachability as seen by calls: true after any answer, false after a network failure. */
  onReachable?: (reachable: boolean, error?: AgentError) => void;
  now?: () => number;
  timeoutMs?: number;
}

export type RequestRole = 'mine' | 'approver';

/**
 * The server's refusal as the agent's failure. A problem with a code of the one union passes through unchanged: its
 * code IS the server's code (stepup_required, self_approval, grant_not_found…) with every member the server sent.
 * A 401 is the session's business (it already tried a fresh token): session_expired, with the server's words.
 * Anything else — a code this agent does not know (a newer server), a body that is no problem (a proxy's error
 * page) — is server_error with the status and whatever words came.
 */
/** A server's refusal as the agent reports it: the server's own problem, passed through unchanged when it is one. */
export function refusal(status: number, json: unknown): AgentError {
  const problem = Problem.safeParse(json);
  const words = z.object({ detail: z.string().optional(), title: z.string().optional() }).safeParse(json);
  const said = words.success ? (words.data.detail ?? words.data.title) : undefined;
  if (status === 401) return new AgentError('session_expired', said ?? 'Your sign-in has expired.', undefined, { status });
  if (problem.success) return AgentError.fromProblem(problem.data);
  return new AgentError('server_error', said ?? `The server answered HTTP ${status}.`, undefined, { status });
}

/** A query string of the fields that are set. */
function queryString(query: Record<string, string | number | undefined>): URLSearchParams {
  return new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
}

export class ApiClient {
  private readonly options: ApiClientOptions;
  private readonly doFetch: typeof fetch;

  constructor(options: ApiClientOptions) {
    this.options = options;
    this.doFetch = options.fetch ?? fetch;
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  url(path: string): string {
    return new URL(path, this.options.baseUrl.endsWith('/') ? this.options.baseUrl : `${this.options.baseUrl}/`).href;
  }

  /** Authorization and device headers, for callers that stream (the event stream). */
  async headers(): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await this.options.accessToken()}`, 'x-stint-device-id': this.options.deviceId };
  }

  private async call<S extends z.ZodType>(method: 'GET' | 'POST' | 'DELETE', path: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    const idempotencyKey = method !== 'GET' ? randomUUID() : undefined;
    let token = await this.options.accessToken();
    let refreshed = false;
    let retriedNetwork = false;
    for (;;) {
      let response: Response;
      try {
        response = await this.doFetch(this.url(path), {
          method,
          headers: {
            accept: 'application/json',
            authorization: `Bearer ${token}`,
            'x-stint-device-id': this.options.deviceId,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
        });
      } catch (cause) {
        if (!retriedNetwork) {
          retriedNetwork = true;
          continue;
        }
        const error = new AgentError('server_unreachable', 'The server can\'t be reached — your active access still ends on time.', cause);
        this.options.onReachable?.(false, error);
        throw error;
      }
      const receivedAt = (this.options.now ?? Date.now)();
      this.options.onReachable?.(true);
      const date = response.headers.get('date');
      if (date && this.options.onServerTime) {
        const serverMs = Date.parse(date);
        if (Number.isFinite(serverMs)) this.options.onServerTime(serverMs, receivedAt, 1000);
      }
      if (response.status === 401 && !refreshed && this.options.refreshAccessToken) {
        refreshed = true;
        token = await this.options.refreshAccessToken();
        continue;
      }
      const text = await response.text().catch(() => '');
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch (cause) {
        // A refusal that is not JSON (a proxy's error page) is still a refusal: server_error with its status.
        if (!response.ok) throw refusal(response.status, undefined);
        throw new AgentError('malformed_response', `The server sent something that is not JSON (${method} ${path}, HTTP ${response.status}).`, cause);
      }
      if (!response.ok) throw refusal(response.status, json);
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        const where = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
        throw new AgentError('malformed_response', `The server's answer to ${method} ${path} does not match what Stint expects (${where}).`, parsed.error);
      }
      return parsed.data;
    }
  }

  me() { return this.call('GET', 'v1/me', Me); }
  async resources() { return (await this.call('GET', 'v1/resources', ResourceList)).resources; }
  createRequest(body: Omit<CreateRequestBody, 'deviceId'>) {
    return this.call('POST', 'v1/requests', CreateRequestResult, { ...body, deviceId: this.options.deviceId });
  }
  async requests(role: RequestRole) { return (await this.call('GET', `v1/requests?role=${role}`, RequestList)).requests; }
  cancel(requestId: string) { return this.call('POST', `v1/requests/${encodeURIComponent(requestId)}/cancel`, RequestResult, {}); }
  stepUp(requestId: string, proof: StepUpProof) { return this.call('POST', `v1/requests/${encodeURIComponent(requestId)}/stepup`, RequestResult, proof); }
  approve(requestId: string, body: { comment?: string; stepUp?: StepUpProof }) {
    return this.call('POST', `v1/requests/${encodeURIComponent(requestId)}/approve`, RequestResult, body);
  }
  deny(requestId: string, reason: string) { return this.call('POST', `v1/requests/${encodeURIComponent(requestId)}/deny`, RequestResult, { reason }); }
  activate(requestId: string, publicKey: string) {
    return this.call('POST', `v1/requests/${encodeURIComponent(requestId)}/activate`, ActivateResult, { publicKey, deviceId: this.options.deviceId });
  }
  /** Take an active grant back with this device's new key: the server answers with its new connection, once. */
  rekey(grantId: string, publicKey: string, stepUp?: StepUpProof) {
    return this.call('POST', `v1/grants/${encodeURIComponent(grantId)}/rekey`, RekeyResult, { publicKey, deviceId: this.options.deviceId, ...(stepUp ? { stepUp } : {}) });
  }
  async grants() { return (await this.call('GET', 'v1/grants', GrantList)).grants; }
  extend(grantId: string, body: { durationSeconds: number; reason?: string }) {
    return this.call('POST', `v1/grants/${encodeURIComponent(grantId)}/extend`, ExtendResult, body);
  }
  /** My audit trail (an admin's: everyone's): newest first below `before`, or oldest first from `after`. */
  audit(query: { before?: number; after?: number; limit?: number }) {
    return this.call('GET', `v1/audit?${queryString({ ...query, order: query.after === undefined ? 'desc' : 'asc' })}`, AuditList);
  }

  // The admin console (server/http/admin-routes.ts); the server refuses anyone but an admin.
  adminLive() { return this.call('GET', 'v1/admin/live', AdminLive); }
  adminAudit(query: AuditFilterFields & { before?: number; limit?: number }) { return this.call('GET', `v1/admin/audit?${queryString(query)}`, AuditPage); }
  adminVerifyStatus() { return this.call('GET', 'v1/admin/audit/verify', AuditVerifyStatus); }
  adminVerify() { return this.call('POST', 'v1/admin/audit/verify', AuditVerifyStatus, {}); }
  adminWebhooks() { return this.call('GET', 'v1/admin/webhooks', WebhookStatusList); }
  adminPolicyHistory(query: { policyId?: string; limit?: number }) { return this.call('GET', `v1/admin/policies/history?${queryString(query)}`, PolicyHistory); }
  async revoke(grantId: string, reason: string) { return (await this.call('POST', `v1/grants/${encodeURIComponent(grantId)}/revoke`, GrantResult, { reason })).grant; }

  /**
   * Stream the audit export into `file` (written beside it, renamed when whole, so a cut download leaves no file that
   * looks complete). Returns the bytes written.
   */
  async downloadAuditExport(query: AuditFilterFields & { format: AuditExportFormat }, file: string): Promise<number> {
    const path = `v1/admin/audit/export?${queryString(query)}`;
    let response = await this.doFetch(this.url(path), { headers: await this.headers() });
    if (response.status === 401 && this.options.refreshAccessToken) {
      await this.options.refreshAccessToken();
      response = await this.doFetch(this.url(path), { headers: await this.headers() });
    }
    if (!response.ok || !response.body) throw refusal(response.status, await response.json().catch(() => undefined));
    const partial = `${file}.part`;
    let bytes = 0;
    try {
      const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
      body.on('data', (chunk: Buffer) => { bytes += chunk.length; });
      await pipeline(body, createWriteStream(partial, { mode: 0o600 }));
      await rename(partial, file);
    } catch (cause) {
      await rm(partial, { force: true });
      throw new AgentError('export_failed', `The export did not finish (${(cause as Error).message}); nothing was saved.`, cause);
    }
    return bytes;
  }

  reviews(all = false) { return this.call('GET', `v1/reviews?state=${all ? 'all' : 'open'}`, ReviewList); }
  recordReview(reviewId: string, body: { outcome: ReviewOutcome; note?: string }) {
    return this.call('POST', `v1/reviews/${encodeURIComponent(reviewId)}/record`, ReviewResult, body);
  }

  // Step-up and enrollment (server/stepup routes).
  stepUpChallenge(body: z.input<typeof ChallengeBody>) { return this.call('POST', 'v1/stepup/challenges', StepUpChallenge, body); }
  stepUpStatus() { return this.call('GET', 'v1/stepup/status', StepUpStatus); }
  listCredentials() { return this.call('GET', 'v1/stepup/credentials', CredentialList); }
  async removeCredential(id: string, stepUp?: StepUpProof) { await this.call('POST', `v1/stepup/credentials/${encodeURIComponent(id)}/remove`, z.unknown(), stepUp ? { stepUp } : {}); }
  registerPasskeyOptions(body: z.input<typeof RegisterOptionsBody>) { return this.call('POST', 'v1/stepup/webauthn/register/options', RegisterOptionsResult, body); }
  registerPasskeyVerify(body: z.input<typeof RegisterVerifyBody>) { return this.call('POST', 'v1/stepup/webauthn/register/verify', CredentialInfo, body); }
  enrollTotp(body: z.input<typeof TotpEnrollBody>) { return this.call('POST', 'v1/stepup/totp/enroll', TotpEnrollResult, body); }
  confirmTotp(body: z.input<typeof TotpConfirmBody>) { return this.call('POST', 'v1/stepup/totp/confirm', TotpConfirmResult, body); }

  async heartbeat(grantIds: string[]) { return (await this.call('POST', 'v1/grants/heartbeat', HeartbeatResult, { grantIds })).seen; }
  async release(grantId: string) { return (await this.call('POST', `v1/grants/${encodeURIComponent(grantId)}/release`, GrantResult, {})).grant; }
  /** Put the password reveal on the server's audit record; the agent shows the password only once this succeeded. */
  async recordPasswordReveal(grantId: string) { return (await this.call('POST', `v1/grants/${encodeURIComponent(grantId)}/reveal-password`, GrantResult, {})).grant; }
}
