// The AgentApi handlers: each method of the contract (shared/contract/agent.ts), its input parsed, mapped onto the
// units that do the work — the server link, my requests, local access, the vault and the published state.
import type { AgentApiHandlers, AgentInput, AgentOutput } from '../../shared/contract/agent';
import { agentApi } from '../../shared/contract/agent';
import type { Launcher, SessionLike } from './agent';
import { AgentError, isAgentError } from './errors';
import type { LocalAccess } from './local-access';
import { clientKind } from './kinds';
import type { Publisher } from './published-state';
import type { Requests } from './requests';
import type { ServerLink } from './server-link';
import type { SettingsStore } from './settings';
import { adminApiHandlers } from './admin-api';
import { checkSignInSettings } from './settings-check';
import type { Vault } from './vault';

/** What the handlers act on. */
export interface AgentApiUnits {
  session: SessionLike;
  settings: SettingsStore;
  fetch?: typeof fetch;
  launcher?: Launcher;
  link: Pick<ServerLink, 'api' | 'online' | 'reload' | 'stopStream' | 'signedOut' | 'serverChanged'>;
  requests: Pick<Requests, 'put' | 'connectWhenApproved' | 'cancelled' | 'applyRequest' | 'approvedByMe' | 'approvalGone' | 'clear'>;
  access: Pick<LocalAccess, 'applyGrant' | 'activate' | 'resume' | 'openFor' | 'isActive' | 'localEndsAt' | 'command' | 'execEnv' | 'kind' | 'release' | 'serverSaid' | 'endAll' | 'clear'>;
  vault: Pick<Vault, 'get' | 'copyUri' | 'wipeAll'>;
  published: Pick<Publisher, 'state' | 'publish'>;
  /** Where the admin console's audit exports are saved. */
  exportDir: string;
  now: () => number;
}

export function agentApiHandlers(u: AgentApiUnits): AgentApiHandlers {
  const signedIn = (): void => {
    if (u.session.status.status !== 'signed_in') throw new AgentError('not_signed_in', 'Sign in to Stint first.');
  };
  const parse = <M extends keyof typeof agentApi>(method: M, input: AgentInput<M>) => {
    const parsed = agentApi[method].input.safeParse(input);
    if (!parsed.success) throw new AgentError('invalid_input', parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '));
    return parsed.data as ReturnType<(typeof agentApi)[M]['input']['parse']>;
  };
  const ok = { ok: true as const };
  const h: { [M in keyof typeof agentApi]: (input: AgentInput<M>) => Promise<AgentOutput<M>> } = {
    getState: async () => u.published.state(),
    signIn: async () => {
      const pending = u.session.signIn();
      u.published.publish(); // show "signing in"
      try {
        await pending;
      } finally {
        u.published.publish();
      }
      await u.link.online();
      const s = u.published.state().session;
      if (s.status !== 'signed_in') throw new AgentError('login_failed', 'Sign-in did not complete.');
      return { user: s.user };
    },
    cancelSignIn: async () => {
      u.session.cancelSignIn();
      return ok;
    },
    signOut: async () => {
      u.link.stopStream();
      await u.access.endAll('sign-out');
      await u.vault.wipeAll();
      await u.session.signOut();
      u.access.clear();
      u.requests.clear();
      u.link.signedOut();
      u.published.publish();
      return ok;
    },
    refresh: async () => {
      signedIn();
      await u.link.reload();
      return u.published.state();
    },
    createRequest: async (input) => {
      signedIn();
      const { connect, ...body } = parse('createRequest', input);
      const { request, grant } = await u.link.api().createRequest(body);
      u.requests.put(request);
      if (grant) u.access.applyGrant(grant, false);
      u.published.publish();
      if (request.state === 'approved' && connect && !grant) {
        const connection = await u.access.activate(request.id);
        const activated = { ...request, grantId: connection.grantId };
        u.requests.put(activated);
        u.published.publish();
        return { request: activated, connection };
      }
      if (connect && (request.state === 'pending_approval' || request.state === 'pending_stepup')) u.requests.connectWhenApproved(request.id);
      return { request, ...(grant ? { grant } : {}) };
    },
    cancelRequest: async (input) => {
      const { requestId } = parse('cancelRequest', input);
      const { request } = await u.link.api().cancel(requestId);
      u.requests.cancelled(requestId);
      u.requests.put(request);
      u.published.publish();
      return { request };
    },
    activateRequest: async (input) => {
      const { requestId } = parse('activateRequest', input);
      signedIn();
      const connection = await u.access.activate(requestId);
      await u.link.reload();
      return connection;
    },
    submitStepUp: async (input) => {
      const { requestId, proof } = parse('submitStepUp', input);
      const { request } = await u.link.api().stepUp(requestId, proof);
      u.requests.applyRequest(request);
      u.published.publish();
      return { request };
    },
    approve: async (input) => {
      const { requestId, comment, stepUp } = parse('approve', input);
      const { request } = await u.link.api().approve(requestId, { ...(comment ? { comment } : {}), ...(stepUp ? { stepUp } : {}) });
      u.requests.approvedByMe(request);
      u.published.publish();
      return { request };
    },
    history: async (input) => u.link.api().audit(parse('history', input)),
    ...adminApiHandlers({ link: u.link, exportDir: u.exportDir, now: u.now, parse }),
    listReviews: async (input) => {
      signedIn();
      return u.link.api().reviews(parse('listReviews', input).all);
    },
    recordReview: async (input) => {
      signedIn();
      const { reviewId, ...body } = parse('recordReview', input);
      return u.link.api().recordReview(reviewId, body);
    },
    stepUpChallenge: async (input) => u.link.api().stepUpChallenge(parse('stepUpChallenge', input)),
    stepUpStatus: async () => u.link.api().stepUpStatus(),
    listCredentials: async () => u.link.api().listCredentials(),
    removeCredential: async (input) => {
      const { id, stepUp } = parse('removeCredential', input);
      await u.link.api().removeCredential(id, stepUp);
      return { ok: true as const };
    },
    registerPasskeyOptions: async (input) => u.link.api().registerPasskeyOptions(parse('registerPasskeyOptions', input)),
    registerPasskeyVerify: async (input) => u.link.api().registerPasskeyVerify(parse('registerPasskeyVerify', input)),
    enrollTotp: async (input) => u.link.api().enrollTotp(parse('enrollTotp', input)),
    confirmTotp: async (input) => u.link.api().confirmTotp(parse('confirmTotp', input)),
    deny: async (input) => {
      const { requestId, reason } = parse('deny', input);
      const { request } = await u.link.api().deny(requestId, reason);
      u.requests.approvalGone(request.id);
      u.published.publish();
      return { request };
    },
    connect: async (input) => {
      const { grantId } = parse('connect', input);
      return u.access.openFor(grantId);
    },
    connectionUri: async (input) => {
      const { grantId } = parse('connectionUri', input);
      const uri = u.vault.get(grantId)?.uri;
      if (!uri) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
      return { uri };
    },
    execEnv: async (input) => {
      const { grantId } = parse('execEnv', input);
      const env = u.access.execEnv(grantId);
      if (!env) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
      return { env };
    },
    revealPassword: async (input) => {
      const { grantId } = parse('revealPassword', input);
      const secrets = u.vault.get(grantId);
      if (!u.access.isActive(grantId) || !secrets) throw new AgentError('not_found', 'This access has ended: its password no longer works.');
      // Audited before it is shown: with no server to record it, the password stays hidden (psql needs no password).
      await u.link.api().recordPasswordReveal(grantId);
      return { password: secrets.dbPassword, user: secrets.dbUser, endsAt: new Date(u.access.localEndsAt(grantId)).toISOString() };
    },
    copyConnectionUri: async (input) => {
      const { grantId } = parse('copyConnectionUri', input);
      if (!u.access.isActive(grantId) || !u.vault.get(grantId)?.uri) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
      // The URI carries the password: copying it (tray, notification) is a reveal, recorded like the app's before the
      // password leaves the agent — with no server to record it, nothing is copied.
      await u.link.api().recordPasswordReveal(grantId);
      if (!(await u.vault.copyUri(grantId))) throw new AgentError('not_found', 'There is no open connection for this access. Connect first.');
      return ok;
    },
    openPsql: async (input) => {
      const { grantId } = parse('openPsql', input);
      const connection = await u.access.openFor(grantId);
      const secrets = u.vault.get(grantId);
      if (!secrets?.uri) throw new AgentError('not_found', 'There is no open connection for this access.');
      // Where no terminal can be opened, say exactly what to run instead.
      const instead = u.access.command(grantId);
      const insteadText = instead ? ` Run this in a terminal instead: ${instead}` : ' Copy the connection URI instead.';
      if (!u.launcher) throw new AgentError('launcher_failed', `This Stint host cannot open a terminal.${insteadText}`);
      try {
        await clientKind(u.access.kind(grantId)).open(u.launcher, { host: connection.host, port: connection.port, user: connection.user, database: connection.database, password: secrets.dbPassword, uri: secrets.uri }, instead);
      } catch (error) {
        if (isAgentError(error) && error.code === 'launcher_failed' && instead) throw new AgentError('launcher_failed', `${error.message.replace(/ Copy the connection URI instead\.$/, '')}${insteadText}`, error);
        throw error;
      }
      return ok;
    },
    extend: async (input) => {
      const { grantId, durationSeconds, reason } = parse('extend', input);
      const out = await u.link.api().extend(grantId, { durationSeconds, ...(reason ? { reason } : {}) });
      u.access.applyGrant(out.grant, false);
      if (out.request) u.requests.put(out.request);
      u.published.publish();
      return { grant: out.grant, ...(out.request ? { request: out.request } : {}) };
    },
    release: async (input) => {
      const { grantId } = parse('release', input);
      await u.access.release(grantId);
      const grant = await u.link.api().release(grantId);
      u.access.serverSaid(grant);
      u.published.publish();
      return { grant };
    },
    resumeGrant: async (input) => {
      const { grantId, stepUp } = parse('resumeGrant', input);
      signedIn();
      const connection = await u.access.resume(grantId, stepUp);
      u.published.publish();
      return connection;
    },
    getSettings: async () => u.settings.get(),
    updateSettings: async (input) => {
      const patch = parse('updateSettings', input);
      const before = u.settings.get();
      // A changed server URL, issuer, client ID or audience is checked (over the network) before anything is
      // saved; other fields never touch the network. A failed check saves nothing.
      await checkSignInSettings(before, patch, u.fetch ? { fetch: u.fetch } : {});
      const after = u.settings.update(patch);
      if (after.serverUrl !== before.serverUrl) {
        u.link.serverChanged();
      }
      return after;
    },
  };
  // A call that found the session gone (refresh token revoked or expired) changes what the UI must show.
  for (const [name, fn] of Object.entries(h) as Array<[string, (input: unknown) => Promise<unknown>]>) {
    (h as Record<string, (input: unknown) => Promise<unknown>>)[name] = async (input: unknown) => {
      try {
        return await fn(input);
      } catch (error) {
        if (isAgentError(error, 'session_expired') || isAgentError(error, 'not_signed_in')) u.published.publish();
        throw error;
      }
    };
  }
  return h as AgentApiHandlers;
}
