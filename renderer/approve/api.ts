// The approve page's calls to its own server (/approve/api/…): the page session, the request as its approver sees it,
// approve and deny. Every POST carries the session's CSRF token; every answer is parsed with the shared contract and
// every failure arrives as a problem, never a throw (as in the step-up client the page reuses).
import { z } from 'zod';
import type { StepUpProof } from '../../shared/contract/http';
import { RequestResult } from '../../shared/contract/http';
import { CSRF_HEADER, PageRequestView, PageSession } from '../../shared/contract/approve-page';
import { callJson, createHttpStepUpClient, type EnrollClient, type Outcome, type StepUpClient } from '../src/stepup/client';

export interface ApprovePageApi {
  session(): Promise<Outcome<PageSession>>;
  view(requestId: string): Promise<Outcome<PageRequestView>>;
  approve(requestId: string, stepUp?: StepUpProof): Promise<Outcome<z.infer<typeof RequestResult>>>;
  deny(requestId: string, reason: string): Promise<Outcome<z.infer<typeof RequestResult>>>;
  signOut(): Promise<Outcome<void>>;
  /** Step-up and factor enrollment for the page's user; a proof completes approving `requestId`. */
  stepUp(requestId: string): StepUpClient & EnrollClient;
}

export function createApprovePageApi(base = '/approve/api'): ApprovePageApi {
  let csrf = '';
  const headers = () => ({ [CSRF_HEADER]: csrf });
  // The page session's cookie goes with each call (same origin only); the CSRF token in a header.
  const call = <T>(method: 'GET' | 'POST', path: string, body: unknown, schema: z.ZodType<T> | null): Promise<Outcome<T>> =>
    callJson({ baseUrl: base, headers, fetch: (url, init) => fetch(url, { ...init, credentials: 'same-origin' }) }, method, path, body, schema);
  const api: ApprovePageApi = {
    async session() {
      const r = await call('GET', '/session', undefined, PageSession);
      if (r.ok) csrf = r.value.csrfToken;
      return r;
    },
    view: (id) => call('GET', `/requests/${encodeURIComponent(id)}`, undefined, PageRequestView),
    approve: (id, stepUp) => call('POST', `/requests/${encodeURIComponent(id)}/approve`, stepUp ? { stepUp } : {}, RequestResult),
    deny: (id, reason) => call('POST', `/requests/${encodeURIComponent(id)}/deny`, { reason }, RequestResult),
    signOut: () => call<void>('POST', '/session/end', {}, null),
    stepUp: (id) => createHttpStepUpClient({ baseUrl: `${base}/stepup`, headers, submitProof: (proof) => api.approve(id, proof) }),
  };
  return api;
}
