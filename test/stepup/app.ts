// A Fastify app for browser tests: the step-up routes inside a scope whose "identity" is a test header, a resolver
// with two policies (request ids `prod-*`: WebAuthn only, UV; `relaxed-*`: WebAuthn or TOTP, no UV), and
// POST /test/prove standing in for the lifecycle (it verifies a proof for an action through the gate).
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AuthUser } from '../../server/identity/user';
import { stepUpProblem, stepUpRoutes, type StepUpAuditEntry } from '../../server/stepup/routes';
import type { StepUpAction, StepUpActionResolver } from '../../server/stepup/seam';
import type { StepUpService } from '../../server/stepup/service';
import type { StepUpMethod, StepUpProof } from '../../shared/contract/http';

export const POLICY: Record<string, { methods: StepUpMethod[]; userVerification: boolean }> = {
  prod: { methods: ['webauthn'], userVerification: true },
  relaxed: { methods: ['webauthn', 'totp'], userVerification: false },
};

export function actionHash(user: string, action: StepUpAction): string {
  return createHash('sha256').update(JSON.stringify([action.kind, action.requestId, user])).digest('hex');
}

export const testResolver: StepUpActionResolver = {
  async resolve(user, action) {
    const policy = POLICY[action.requestId.split('-')[0] ?? ''];
    if (!policy) return { ok: false, status: 404, code: 'request_not_found', message: 'no such request' };
    return { ok: true, actionHash: actionHash(user.sub, action), ...policy, summary: `${action.kind} ${action.requestId}` };
  },
};

export async function buildTestApp(service: StepUpService, audit: StepUpAuditEntry[], pages: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify();
  pages(app);
  await app.register(async (scope) => {
    scope.decorateRequest('user', null as unknown as AuthUser);
    // onRequest, before the step-up routes' own check (they refuse a request no host hook authenticated).
    scope.addHook('onRequest', async (request) => {
      const sub = String(request.headers['x-test-user'] ?? 'alice');
      request.user = { sub, groups: ['engineers'], admin: false, name: sub, email: `${sub}@example.com` };
    });
    await scope.register(stepUpRoutes({ service, resolver: testResolver, audit: async (e) => { audit.push(e); } }), { prefix: '/v1/stepup' });
    scope.post<{ Body: { action: StepUpAction; proof: StepUpProof } }>('/test/prove', async (request, reply) => {
      const { action, proof } = request.body;
      const policy = POLICY[action.requestId.split('-')[0] ?? '']!;
      const result = await service.verify({ userId: request.user.sub, action, actionHash: actionHash(request.user.sub, action), ...policy, proof });
      if (result.ok) return result;
      const p = stepUpProblem(result);
      return reply.code(p.status).type('application/problem+json').send(p);
    });
  });
  return app;
}
