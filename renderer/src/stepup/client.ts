// What the step-up views need from the outside world. In the desktop app these calls go through the AgentApi
// (window.stint); in the web host and tests, `createHttpStepUpClient` calls the grant server's /v1/stepup routes
// directly. Every response is parsed with the shared contract; every failure arrives as a problem, never a throw.
import type { StepUpProof } from '../../../shared/contract/http';
import { localProblem, Problem, type AgentProblem } from '../../../shared/contract/problem';
import {
  CredentialInfo, RegisterOptionsResult, StepUpChallenge, StepUpStatus, TotpEnrollResult,
  type StepUpActionRef,
} from '../../../shared/contract/stepup';
import { z } from 'zod';

/** A failure is the one problem shape, as the agent would have passed it on (see problem.ts). */
export type Outcome<T> = { ok: true; value: T } | { ok: false; problem: AgentProblem };

export interface StepUpClient {
  /** A challenge bound to this action (request or approval). */
  getChallenge(action: StepUpActionRef): Promise<Outcome<StepUpChallenge>>;
  /** Completes the action with the proof (e.g. the lifecycle's step-up or approve endpoint). */
  submitProof(proof: StepUpProof): Promise<Outcome<unknown>>;
}

export interface EnrollClient {
  status(): Promise<Outcome<StepUpStatus>>;
  listCredentials(): Promise<Outcome<CredentialInfo[]>>;
  /** Needs a proof for the `enroll` action when the server asks (stepup_required). */
  removeCredential(id: string, stepUp?: StepUpProof): Promise<Outcome<void>>;
  registerOptions(body: { label?: string; stepUp?: StepUpProof }): Promise<Outcome<RegisterOptionsResult>>;
  registerVerify(body: { challengeId: string; response: Record<string, unknown>; label?: string }): Promise<Outcome<CredentialInfo>>;
  totpEnroll(body: { stepUp?: StepUpProof }): Promise<Outcome<TotpEnrollResult>>;
  totpConfirm(code: string): Promise<Outcome<{ confirmed: true }>>;
  /** A challenge for step-up's own `enroll` action (adding a factor when one exists). */
  getChallenge(action: StepUpActionRef): Promise<Outcome<StepUpChallenge>>;
}

export interface HttpClientOptions {
  /** e.g. `https://stint.example.com/v1/stepup` */
  baseUrl: string;
  fetch?: typeof fetch;
  headers?: () => Promise<Record<string, string>> | Record<string, string>;
  /** Where a proof is submitted (the lifecycle's endpoint); returns the parsed body or a problem. */
  submitProof?: (proof: StepUpProof) => Promise<Outcome<unknown>>;
}

function networkProblem(error: unknown): AgentProblem {
  return localProblem('network_error', error instanceof Error ? error.message : String(error));
}

/** One JSON call: the answer parsed by `schema`, any failure as a problem (never a throw). The pages reuse it. */
export async function callJson<T>(opts: Pick<HttpClientOptions, 'baseUrl' | 'fetch' | 'headers'>, method: string, path: string, body: unknown, schema: z.ZodType<T> | null): Promise<Outcome<T>> {
  const doFetch = opts.fetch ?? fetch;
  try {
    const headers = { ...(opts.headers ? await opts.headers() : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
    const res = await doFetch(`${opts.baseUrl}${path}`, { method, headers, body: body !== undefined ? JSON.stringify(body) : undefined });
    const text = await res.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const p = Problem.safeParse(json);
      return { ok: false, problem: p.success ? { ...p.data, detail: p.data.detail ?? p.data.title } : localProblem('server_error', text.slice(0, 200) || res.statusText, { status: res.status }) };
    }
    return { ok: true, value: schema ? schema.parse(json) : (undefined as T) };
  } catch (error) {
    return { ok: false, problem: networkProblem(error) };
  }
}

export function createHttpStepUpClient(opts: HttpClientOptions): StepUpClient & EnrollClient {
  return {
    getChallenge: (action) => callJson(opts, 'POST', '/challenges', { action }, StepUpChallenge),
    submitProof: (proof) => (opts.submitProof ? opts.submitProof(proof) : Promise.resolve({ ok: false, problem: localProblem('internal', 'No endpoint to submit the proof to.') })),
    status: () => callJson(opts, 'GET', '/status', undefined, StepUpStatus),
    listCredentials: async () => {
      const r = await callJson(opts, 'GET', '/credentials', undefined, z.object({ credentials: z.array(CredentialInfo) }));
      return r.ok ? { ok: true, value: r.value.credentials } : r;
    },
    removeCredential: (id, stepUp) => callJson<void>(opts, 'POST', `/credentials/${encodeURIComponent(id)}/remove`, stepUp ? { stepUp } : {}, null),
    registerOptions: (body) => callJson(opts, 'POST', '/webauthn/register/options', body, RegisterOptionsResult),
    registerVerify: (body) => callJson(opts, 'POST', '/webauthn/register/verify', body, CredentialInfo),
    totpEnroll: (body) => callJson(opts, 'POST', '/totp/enroll', body, TotpEnrollResult),
    totpConfirm: (code) => callJson(opts, 'POST', '/totp/confirm', { code }, z.object({ confirmed: z.literal(true) })),
  };
}
