// HTTP routes for step-up at /v1/stepup, declared for the router (server/http/router.ts) as 'user' routes: the router
// verifies the caller's token (request.user) before any handler runs. Bodies are parsed with shared/contract/stepup;
// failures are RFC 9457 problem+json with a `code`.
// Changing factors is itself a step-up action (`{kind:'enroll'}`): adding one when the user already has one, and
// removing any. Otherwise a stolen bearer token could delete the victim's factors and enroll the thief's own, and
// pass every later step-up. (Removal used to be a plain DELETE that needed nothing but the token.)
// A user who lost every factor cannot step up and cannot add one; an administrator resets them (declared 'admin', so
// the router refuses anyone else before the handler), with a reason and a fresh proof of the admin's OWN bound to
// resetting that user (`resetActionHash(admin, subject)`, from the challenge route next to it). The reset is audited
// (`stepup.factors.reset`, about the user), told to the user's agents (`factor.changed`), and leaves the user with no
// factor: their next one is a first one, which needs no proof — as for any user who never had one.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { StepUpMethod, StepUpProof } from '../../shared/contract/http';
import {
  ChallengeBody, CredentialInfo, CredentialList, RegisterOptionsBody, RegisterOptionsResult, RegisterVerifyBody, RemoveFactorBody,
  ResetChallengeBody, ResetFactorsBody, ResetFactorsResult, ResetSubject, StepUpChallenge, StepUpStatus, TotpConfirmBody,
  TotpConfirmResult, TotpEnrollBody, TotpEnrollResult, type StepUpFailureCode,
} from '../../shared/contract/stepup';
import { problemStatus, type Problem, type ProblemCode } from '../../shared/contract/problem';
import { problemBody, type DomainError } from '../errors';
import type { AuthUser } from '../identity/user';
import { hostAuthenticatedUser } from '../http/access';
import { serveRoutes, type Guard, type Route } from '../http/router';
import type { ReportedAudit } from '../lifecycle/audit';
import type { StepUpActionResolver, StepUpResult } from './seam';
import { enrollActionHash, resetActionHash, type IssuedChallenge, type StepUpService } from './service';

export interface StepUpAuditEntry {
  actor: string;
  /** e.g. `stepup.challenge.issued`, `stepup.enroll.refused`, `stepup.credential.added`, `stepup.totp.confirmed`. */
  action: string;
  detail?: Record<string, unknown>;
}

export interface StepUpRoutesOptions {
  service: StepUpService;
  resolver: StepUpActionResolver;
  audit?: (entry: StepUpAuditEntry) => Promise<void>;
  /** How soon after sign-in (the token's auth_time) a first factor may be set up without a proof; unset: any time. */
  firstFactorWindowMs?: number;
  now?: () => number;
}

/** HTTP status for a step-up failure code: the one problem table's (the lifecycle answers a refused proof with it too). */
export function stepUpFailureStatus(code: StepUpFailureCode): number {
  return problemStatus(code) ?? 403;
}

/** problem+json body for a failed StepUpResult (for the lifecycle's routes too). */
export function stepUpProblem(result: Extract<StepUpResult, { ok: false }>): Problem {
  return problem(result.code, result.message, {
    ...(result.reason ? { reason: result.reason } : {}),
    ...(result.attemptsLeft !== undefined ? { attemptsLeft: result.attemptsLeft } : {}),
    ...(result.retryAfter !== undefined ? { retryAfter: new Date(result.retryAfter).toISOString() } : {}),
  });
}

function send(reply: FastifyReply, problem: Problem, now: number = Date.now()): FastifyReply {
  if (problem.retryAfter) {
    const seconds = Math.max(1, Math.ceil((Date.parse(problem.retryAfter) - now) / 1000));
    void reply.header('retry-after', String(seconds));
  }
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

/** A refusal in the one problem shape; its status is the code's, from the table, unless a resolver said otherwise. */
function problem(code: ProblemCode, detail: string, extra: Partial<Problem> = {}, status = problemStatus(code) ?? 403): Problem {
  return { ...problemBody({ status: status as DomainError['status'], code, message: detail }), ...extra };
}

function parse<S extends z.ZodType>(schema: S, body: unknown): { ok: true; value: z.output<S> } | { ok: false; problem: Problem } {
  const r = schema.safeParse(body ?? {});
  if (r.success) return { ok: true, value: r.data };
  return {
    ok: false,
    problem: problem('validation_failed', 'The request body is not valid.', {
      errors: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    }),
  };
}

const enrollProof = '(after the first factor) a proof for the enroll action with a factor the user has';
const CredentialId = z.string().min(1).max(200).describe('a credential id from GET /v1/stepup/credentials');
const resetProof = "a fresh proof of the admin's own, bound to resetting this user (…/factors/reset/challenge)";
const resetRefusal = { action: 'stepup.factors.reset', message: "only administrators may reset a user's sign-in factors" };

function challengeOut(c: IssuedChallenge, summary: string): StepUpChallenge {
  return {
    challengeId: c.challengeId,
    expiresAt: new Date(c.expiresAt).toISOString(),
    summary,
    methods: c.methods,
    policyMethods: c.policyMethods,
    userVerification: c.userVerification,
    ...(c.webauthn ? { webauthn: c.webauthn as unknown as Record<string, unknown> } : {}),
    ...(c.totp ? { totp: { attemptsLeft: c.totp.attemptsLeft, ...(c.totp.lockedUntil !== undefined ? { lockedUntil: new Date(c.totp.lockedUntil).toISOString() } : {}) } } : {}),
  };
}

/**
 * The step-up routes as declarations for the router. Nothing of `opts` is touched until a handler runs, so the list
 * can also be built just to document it.
 */
export function declareStepUpRoutes(opts: StepUpRoutesOptions): Route[] {
  const audit = async (entry: StepUpAuditEntry) => { if (opts.audit) await opts.audit(entry); };

  /**
   * When the user already has a factor, changing factors (adding another, removing one) needs a proof for the
   * `enroll` action with one they have.
   */
  async function enrollGate(request: FastifyRequest, proof: StepUpProof | undefined, doing: 'add' | 'remove' = 'add'): Promise<Problem | undefined> {
    const sub = request.user.sub;
    const enrolled = await opts.service.enrolledMethods(sub);
    if (enrolled.length === 0) {
      // The first factor needs no proof — there is none to give — but only right after a sign-in, so an access token
      // stolen hours ago cannot set up the thief's factor for a user who has none (e.g. after an admin reset).
      const signedInAt = request.user.authTime;
      const window = opts.firstFactorWindowMs;
      if (window !== undefined && signedInAt !== undefined && (opts.now ?? Date.now)() - signedInAt > window) {
        await audit({ actor: sub, action: 'stepup.enroll.refused', detail: { code: 'fresh_signin_required', change: doing } });
        return problem('fresh_signin_required', `Setting up a first factor needs a sign-in from the last ${Math.round(window / 60_000)} minutes: sign out, sign in again, then set it up.`);
      }
      return undefined;
    }
    if (!proof) {
      const why = doing === 'add' ? 'You already have a sign-in factor: confirm with it before adding another.' : 'Confirm with one of your sign-in factors before removing one.';
      return problem('stepup_required', why, { methods: enrolled });
    }
    const result = await opts.service.verifyForHash({ userId: sub, actionHash: enrollActionHash(sub), methods: enrolled, userVerification: true, proof });
    if (result.ok) return undefined;
    await audit({ actor: sub, action: 'stepup.enroll.refused', detail: { code: result.code, reason: result.reason, method: proof.method, change: doing } });
    return stepUpProblem(result);
  }

  const tags = ['stepup'];
  return [
    {
      method: 'POST', url: '/v1/stepup/challenges', access: 'user',
      doc: { operationId: 'createStepUpChallenge', summary: 'A challenge bound to one action (a request, an approval, or changing factors)', tags, body: ChallengeBody, response: StepUpChallenge, status: 201, problems: [400, 403, 404, 409] },
      handler: async (request, reply) => {
        const body = parse(ChallengeBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const user: AuthUser = request.user;
        const action = body.value.action;
        let target: { actionHash: string; methods: StepUpMethod[]; userVerification: boolean; summary: string };
        if (action.kind === 'enroll') {
          const enrolled = await opts.service.enrolledMethods(user.sub);
          if (enrolled.length === 0) return send(reply, problem('stepup_not_enrolled', 'You have no factor yet; adding the first one needs no step-up.'));
          target = { actionHash: enrollActionHash(user.sub), methods: enrolled, userVerification: true, summary: 'Change the sign-in factors of your account' };
        } else {
          const resolved = await opts.resolver.resolve({ sub: user.sub, groups: user.groups }, action);
          if (!resolved.ok) return send(reply, problem(resolved.code, resolved.message, {}, resolved.status));
          target = resolved;
        }
        const issued = await opts.service.issueChallenge({ userId: user.sub, actionHash: target.actionHash, methods: target.methods, userVerification: target.userVerification });
        if (!issued.ok) return send(reply, problem(issued.code, issued.message, { methods: issued.policyMethods }));
        const c = issued.challenge;
        await audit({ actor: user.sub, action: 'stepup.challenge.issued', detail: { action, methods: c.methods, challengeId: c.challengeId } });
        return reply.code(201).send(challengeOut(c, target.summary));
      },
    },
    {
      method: 'GET', url: '/v1/stepup/status', access: 'user',
      doc: { operationId: 'getStepUpStatus', summary: 'Which factors I have, and whether one-time codes are locked', tags, response: StepUpStatus },
      handler: async (request) => opts.service.status(request.user.sub),
    },
    {
      method: 'GET', url: '/v1/stepup/credentials', access: 'user',
      doc: { operationId: 'listStepUpCredentials', summary: 'My passkeys', tags, response: CredentialList },
      handler: async (request) => ({ credentials: await opts.service.listCredentials(request.user.sub) }),
    },
    {
      method: 'POST', url: '/v1/stepup/credentials/:id/remove', access: 'user', stepUp: 'an enroll proof with a factor the user has',
      doc: { operationId: 'removeStepUpCredential', summary: `Remove one of my passkeys; needs ${enrollProof}`, tags, params: { id: CredentialId }, body: RemoveFactorBody, response: { description: 'Removed' }, status: 204, problems: [400, 403, 404, 409, 410, 429] },
      handler: async (request, reply) => {
        const body = parse(RemoveFactorBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        // Before any lookup: without a proof, a token alone cannot even learn which credential ids exist.
        const refused = await enrollGate(request, body.value.stepUp, 'remove');
        if (refused) return send(reply, refused, opts.service.now());
        const id = (request.params as { id: string }).id;
        const removed = await opts.service.removeCredential(request.user.sub, id);
        if (!removed) return send(reply, problem('credential_not_found', 'You have no credential with this id.'));
        await audit({ actor: request.user.sub, action: 'stepup.credential.removed', detail: { credentialId: id } });
        return reply.code(204).send();
      },
    },
    {
      method: 'POST', url: '/v1/stepup/webauthn/register/options', access: 'user', stepUp: 'an enroll proof, unless it is the first factor',
      doc: { operationId: 'startPasskeyRegistration', summary: `Options for registering a passkey; needs ${enrollProof}`, tags, body: RegisterOptionsBody, response: RegisterOptionsResult, problems: [400, 403, 409, 410, 429] },
      handler: async (request, reply) => {
        const body = parse(RegisterOptionsBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const refused = await enrollGate(request, body.value.stepUp);
        if (refused) return send(reply, refused, opts.service.now());
        const { challengeId, options } = await opts.service.registrationOptions(request.user);
        return { challengeId, options };
      },
    },
    {
      method: 'POST', url: '/v1/stepup/webauthn/register/verify', access: 'user',
      doc: { operationId: 'finishPasskeyRegistration', summary: 'Register the passkey the authenticator created for those options', tags, body: RegisterVerifyBody, response: CredentialInfo, status: 201, problems: [400, 403, 409, 410] },
      handler: async (request, reply) => {
        const body = parse(RegisterVerifyBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const result = await opts.service.verifyRegistration(request.user.sub, body.value);
        if (!result.ok) {
          await audit({ actor: request.user.sub, action: 'stepup.credential.refused', detail: { code: result.code, reason: result.reason } });
          return send(reply, problem(result.code, result.message, result.reason ? { reason: result.reason } : {}));
        }
        await audit({ actor: request.user.sub, action: 'stepup.credential.added', detail: { credentialId: result.credential.id, label: result.credential.label } });
        return reply.code(201).send(result.credential);
      },
    },
    {
      method: 'POST', url: '/v1/stepup/totp/enroll', access: 'user', stepUp: 'an enroll proof, unless it is the first factor',
      doc: { operationId: 'enrollTotp', summary: `Start setting up an authenticator app (its secret is shown once); needs ${enrollProof}`, tags, body: TotpEnrollBody, response: TotpEnrollResult, problems: [400, 403, 409, 410, 429] },
      handler: async (request, reply) => {
        const body = parse(TotpEnrollBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const refused = await enrollGate(request, body.value.stepUp);
        if (refused) return send(reply, refused, opts.service.now());
        const enrolled = await opts.service.enrollTotp(request.user);
        await audit({ actor: request.user.sub, action: 'stepup.totp.enrolling' });
        // The secret leaves the server once, here; never cache this response.
        void reply.header('cache-control', 'no-store');
        return enrolled;
      },
    },
    {
      method: 'POST', url: '/v1/stepup/totp/confirm', access: 'user',
      doc: { operationId: 'confirmTotp', summary: 'Finish setting up the authenticator app with a code from it', tags, body: TotpConfirmBody, response: TotpConfirmResult, problems: [400, 404, 409] },
      handler: async (request, reply) => {
        const body = parse(TotpConfirmBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const result = await opts.service.confirmTotp(request.user.sub, body.value.code);
        if (!result.ok) return send(reply, problem(result.code, result.message));
        await audit({ actor: request.user.sub, action: 'stepup.totp.confirmed' });
        return { confirmed: true as const };
      },
    },
    {
      method: 'POST', url: '/v1/stepup/totp/remove', access: 'user', stepUp: 'an enroll proof with a factor the user has',
      doc: { operationId: 'removeTotp', summary: `Remove my authenticator app; needs ${enrollProof}`, tags, body: RemoveFactorBody, response: { description: 'Removed' }, status: 204, problems: [400, 403, 404, 409, 410, 429] },
      handler: async (request, reply) => {
        const body = parse(RemoveFactorBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const refused = await enrollGate(request, body.value.stepUp, 'remove');
        if (refused) return send(reply, refused, opts.service.now());
        const removed = await opts.service.removeTotp(request.user.sub);
        if (!removed) return send(reply, problem('totp_not_enrolled', 'You have no authenticator app set up.'));
        await audit({ actor: request.user.sub, action: 'stepup.totp.removed' });
        return reply.code(204).send();
      },
    },
    {
      method: 'POST', url: '/v1/admin/users/:sub/factors/reset/challenge', access: 'admin', rate: 'proof', refusal: resetRefusal,
      doc: {
        operationId: 'createFactorResetChallenge', summary: "A challenge for one of the admin's own factors, bound to resetting this user's factors", tags,
        params: { sub: ResetSubject }, body: ResetChallengeBody, response: StepUpChallenge, status: 201, problems: [400, 403, 409],
      },
      handler: async (request, reply) => {
        const body = parse(ResetChallengeBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const subject = parse(ResetSubject, (request.params as { sub?: string }).sub);
        if (!subject.ok) return send(reply, subject.problem);
        const admin = request.user.sub;
        const enrolled = await opts.service.enrolledMethods(admin);
        if (enrolled.length === 0) return send(reply, problem('stepup_not_enrolled', "Resetting a user's factors needs a sign-in factor of your own; set one up first."));
        const issued = await opts.service.issueChallenge({ userId: admin, actionHash: resetActionHash(admin, subject.value), methods: enrolled, userVerification: true });
        if (!issued.ok) return send(reply, problem(issued.code, issued.message, { methods: issued.policyMethods }));
        const c = issued.challenge;
        await audit({ actor: admin, action: 'stepup.challenge.issued', detail: { action: { kind: 'reset', subject: subject.value }, methods: c.methods, challengeId: c.challengeId } });
        return reply.code(201).send(challengeOut(c, `Reset every sign-in factor of ${subject.value}`));
      },
    },
    {
      method: 'POST', url: '/v1/admin/users/:sub/factors/reset', access: 'admin', rate: 'proof', stepUp: resetProof, refusal: resetRefusal,
      doc: {
        operationId: 'resetUserFactors',
        summary: `Remove every passkey and the authenticator app of a user who lost them (their next factor needs no proof); needs a reason and ${resetProof}`,
        tags, params: { sub: ResetSubject }, body: ResetFactorsBody, response: ResetFactorsResult, problems: [400, 403, 409, 410, 429],
      },
      handler: async (request, reply) => {
        const body = parse(ResetFactorsBody, request.body);
        if (!body.ok) return send(reply, body.problem);
        const parsedSubject = parse(ResetSubject, (request.params as { sub?: string }).sub);
        if (!parsedSubject.ok) return send(reply, parsedSubject.problem);
        const subject = parsedSubject.value;
        const { reason, stepUp: proof } = body.value;
        const admin = request.user.sub;
        // About the user (their subject), through the lifecycle's chain when it is there; else the routes' own audit.
        const auditAbout = async (row: ReportedAudit) => {
          if (opts.resolver.auditReported) await opts.resolver.auditReported([row]);
          else await audit({ actor: row.actor, action: row.action, detail: { ...row.detail, subject, ...(row.reason ? { reason: row.reason } : {}) } });
        };

        // The admin's own proof first, before anything of the user's is looked at.
        const enrolled = await opts.service.enrolledMethods(admin);
        if (enrolled.length === 0) return send(reply, problem('stepup_not_enrolled', "Resetting a user's factors needs a sign-in factor of your own; set one up first."));
        if (!proof) return send(reply, problem('stepup_required', `Confirm with one of your own sign-in factors to reset ${subject}'s.`, { methods: enrolled }));
        const proved = await opts.service.verifyForHash({ userId: admin, actionHash: resetActionHash(admin, subject), methods: enrolled, userVerification: true, proof });
        if (!proved.ok) {
          await auditAbout({ actor: admin, subject, action: 'stepup.factors.reset.refused', reason, detail: { code: proved.code, reason: proved.reason, method: proof.method } });
          return send(reply, stepUpProblem(proved), opts.service.now());
        }

        // On the record, and told to the user's agents, before the factors go: a reset is never unaudited. Should the
        // removal then fail, the admin gets an error and tries again; the record says what was to be removed.
        const before = await opts.service.factorsOf(subject);
        const removed = (factor: 'passkey' | 'authenticator app', label?: string) => ({
          event: { type: 'factor.changed' as const, change: 'removed' as const, factor, ...(label ? { label } : {}) }, users: [subject],
        });
        await auditAbout({
          actor: admin, subject, action: 'stepup.factors.reset', reason,
          detail: { admin, subject, method: proved.method, passkeys: before.passkeys, totp: before.totp },
          tell: [...before.passkeys.map((p) => removed('passkey', p.label)), ...(before.totp === 'confirmed' ? [removed('authenticator app')] : [])],
        });
        await opts.service.resetFactors(subject);
        return { subject, removed: { passkeys: before.passkeys.length, totp: before.totp } };
      },
    },
  ];
}

/**
 * The step-up routes as a plugin, for hosts other than the grant server (which serves the declarations in its one
 * route list). They go through the router all the same: `authenticate` is the user check (by default, an earlier
 * onRequest hook of the host must have set request.user, or the routes answer 401). Register at the root, or under
 * the prefix /v1/stepup.
 */
export function stepUpRoutes(opts: StepUpRoutesOptions & { authenticate?: Guard }): FastifyPluginAsync {
  return async (app) => {
    // Under /v1/stepup only the user's own routes fit; the admins' reset (/v1/admin/…) is served when at the root.
    const routes = declareStepUpRoutes(opts).filter((route) => route.url.startsWith(app.prefix));
    serveRoutes(app, routes, { user: opts.authenticate ?? hostAuthenticatedUser });
  };
}
