// What the tray and notifications show, as pure functions of the agent's state and the time. The Electron shell
// turns a TrayModel into Tray/Menu calls and AgentNotifications into native notifications; nothing here knows
// about Electron, so all of it is unit-tested with an injected `now`.
import type { AgentNotification, AgentState, LocalGrant } from '../../shared/contract/agent';
import type { AccessRequest, Resource } from '../../shared/contract/http';
import { countdownChangesInMs, formatCountdown, formatCountdownMinutes } from '../../shared/domain/countdown';
import { formatDuration } from '../../shared/domain/duration';
import { kindWords } from '../../shared/domain/kinds';
import { needsApproval, resourceHints } from '../../shared/domain/policy-words';

export type TrayIcon = 'idle' | 'active' | 'waiting' | 'needs_you' | 'offline';

/** A window to show: a view of the renderer (renderer/src/route.ts reads `view` and the params). */
export type TrayOpen = { type: 'open'; view: 'request' | 'stepup' | 'resume' | 'approve' | 'deny' | 'extend' | 'main' | 'settings'; params?: Record<string, string> };

export type TrayAction =
  | {
    type: 'call';
    method: 'signIn' | 'signOut' | 'connect' | 'openPsql' | 'copyConnectionUri' | 'release' | 'resumeGrant' | 'cancelRequest';
    input: Record<string, string>;
    /**
     * Where the user finishes the call when the agent answers that it needs a step-up first (`stepup_required`): a
     * menu cannot ask for a passkey or a code, a window can. Whether it is needed is the server's to say at the call
     * (policy, risk), so the call is tried first and the window opens only when it is.
     */
    onStepUp?: TrayOpen;
  }
  | TrayOpen
  | { type: 'quit' };

export type TrayMenuItem =
  | { kind: 'separator' }
  | { kind: 'label'; label: string }
  | { kind: 'item'; label: string; action?: TrayAction; submenu?: TrayMenuItem[]; enabled?: boolean };

export interface TrayModel {
  icon: TrayIcon;
  /** macOS menu-bar title: the soonest grant's time left (`42m`, then `0:59`), or ''. */
  title: string;
  tooltip: string;
  menu: TrayMenuItem[];
  /** When the text above next changes (countdowns), ms; the shell re-renders then (no polling). */
  refreshAfterMs?: number;
}

const ENV_ORDER = ['production', 'prod', 'staging', 'stage', 'development', 'dev'];

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function resourceName(state: AgentState, id: string, fallback?: string): string {
  return state.resources.find((r) => r.id === id)?.name ?? fallback ?? id;
}

/** Time left for the countdown text: the one place the published instant is read back (for drawing only). */
function msLeft(local: LocalGrant, now: number): number {
  return Date.parse(local.localEndsAt) - now;
}

/** The grants still live, as the agent published them (its phase, its order: soonest end first), with time left. */
export function activeGrants(state: AgentState, now: number): Array<{ local: LocalGrant; msLeft: number }> {
  return state.grants
    .filter((g) => g.phase !== 'ended')
    .map((local) => ({ local, msLeft: msLeft(local, now) }));
}

function pendingMine(state: AgentState): AccessRequest[] {
  return state.requests.filter((r) => r.state === 'pending_approval' || r.state === 'pending_stepup');
}

function pendingApprovals(state: AgentState): AccessRequest[] {
  return state.approvals.filter((r) => r.state === 'pending_approval');
}

function approvalProgress(request: AccessRequest): string {
  if (request.state === 'pending_stepup') return 'verify to continue';
  const needed = request.approvalsNeeded.reduce((n, a) => n + a.count, 0);
  const have = request.approvalsNeeded.reduce((n, a) => n + Math.min(a.have, a.count), 0);
  return `${have} of ${needed} approval${needed === 1 ? '' : 's'}`;
}

/** The hint next to a resource in "Request access": what clicking it will lead to. */
export function requestHint(resource: Resource): string {
  // The first thing in the way, in the words the app and the CLI use (a policy with neither approvers nor
  // auto-approval is refused by the server's config).
  const p = resource.policy;
  return needsApproval(p) ? 'needs approval' : resourceHints(p).at(-1)!;
}

function who(request: AccessRequest): string {
  return request.requesterName ?? request.requester;
}

export function trayModel(state: AgentState, now: number): TrayModel {
  const signedIn = state.session.status === 'signed_in';
  const offline = signedIn && state.server.status === 'offline';
  const active = signedIn ? activeGrants(state, now) : [];
  const waiting = signedIn ? pendingMine(state) : [];
  const approvals = signedIn ? pendingApprovals(state) : [];
  // A grant left from before (Stint stopped while it was active) waits for the user too: resume it or end it.
  const leftOver = active.filter((g) => g.local.leftFromBefore).length;
  const needsYou = approvals.length + waiting.filter((r) => r.state === 'pending_stepup').length + leftOver;

  const icon: TrayIcon = !signedIn || offline ? 'offline' : needsYou ? 'needs_you' : active.length ? 'active' : waiting.length ? 'waiting' : 'idle';
  const grantText = (g: { local: LocalGrant; msLeft: number }) => ({
    name: resourceName(state, g.local.grant.resourceId, g.local.resourceName),
    // Menu and tooltip are redrawn at most once a minute: no seconds there (the macOS title has them).
    left: formatCountdownMinutes(g.msLeft),
  });

  let tooltip: string;
  if (!signedIn) tooltip = 'Stint — signed out';
  else if (active.length) tooltip = `Stint — ${active.map((g) => { const t = grantText(g); return `${t.name} (${g.local.grant.level}) ${t.left} left`; }).join(' · ')}`;
  else if (waiting.length) tooltip = `Stint — waiting for ${waiting.length === 1 ? 'approval' : `${waiting.length} approvals`}`;
  else tooltip = 'Stint — no active access';
  if (offline) tooltip += ' · the server can\'t be reached';
  if (approvals.length) tooltip += ` · ${approvals.length} waiting for you`;

  const menu: TrayMenuItem[] = [];
  if (state.session.status === 'signed_in') {
    const user = state.session.user;
    let host = state.server.url;
    try { host = new URL(state.server.url).host; } catch { /* keep as is */ }
    menu.push({ kind: 'label', label: `Signed in as ${user.email ?? user.name ?? user.sub} — ${host}` });
    if (offline) menu.push({ kind: 'label', label: 'The server can\'t be reached — your active access still ends on time.' });
  } else {
    menu.push({ kind: 'label', label: state.session.status === 'signing_in' ? 'Signing in… finish in your browser' : (state.session.message ?? 'Signed out') });
    if (state.session.status === 'signed_out') menu.push({ kind: 'item', label: 'Sign in…', action: { type: 'call', method: 'signIn', input: {} } });
  }

  if (active.length) {
    menu.push({ kind: 'separator' }, { kind: 'label', label: 'Active' });
    for (const g of active) {
      const t = grantText(g);
      const grantId = g.local.grant.id;
      if (g.local.leftFromBefore) {
        menu.push({
          kind: 'item',
          label: `${t.name} · ${g.local.grant.level} · ${t.left} left · stopped`,
          submenu: [
            { kind: 'label', label: 'Stint stopped while this access was active' },
            {
              kind: 'item',
              label: 'Resume',
              action: { type: 'call', method: 'resumeGrant', input: { grantId }, onStepUp: { type: 'open', view: 'resume', params: { grantId, requestId: g.local.grant.requestId } } },
            },
            { kind: 'item', label: 'End', action: { type: 'call', method: 'release', input: { grantId } } },
          ],
        });
        continue;
      }
      const open = g.local.tunnel?.status === 'open';
      const submenu: TrayMenuItem[] = open
        ? [
            { kind: 'item', label: `Open in ${kindWords(g.local.grant.kind).client}`, action: { type: 'call', method: 'openPsql', input: { grantId } } },
            { kind: 'item', label: 'Copy connection URI', action: { type: 'call', method: 'copyConnectionUri', input: { grantId } } },
          ]
        : [{ kind: 'item', label: g.local.tunnel?.status === 'opening' ? 'Connecting…' : 'Connect', enabled: g.local.tunnel?.status !== 'opening', action: { type: 'call', method: 'connect', input: { grantId } } }];
      if (g.local.tunnel?.message) submenu.unshift({ kind: 'label', label: g.local.tunnel.message });
      submenu.push(
        { kind: 'item', label: 'Extend…', action: { type: 'open', view: 'extend', params: { grantId } } },
        { kind: 'item', label: 'End now', action: { type: 'call', method: 'release', input: { grantId } } },
      );
      menu.push({ kind: 'item', label: `${t.name} · ${g.local.grant.level} · ${t.left} left`, submenu });
    }
  }

  if (waiting.length) {
    menu.push({ kind: 'separator' }, { kind: 'label', label: 'Waiting' });
    for (const r of waiting) {
      const submenu: TrayMenuItem[] = [];
      if (r.state === 'pending_stepup') submenu.push({ kind: 'item', label: 'Verify…', action: { type: 'open', view: 'stepup', params: { requestId: r.id } } });
      submenu.push({ kind: 'item', label: 'Cancel request', action: { type: 'call', method: 'cancelRequest', input: { requestId: r.id } } });
      menu.push({ kind: 'item', label: `${resourceName(state, r.resourceId)} · ${r.level} · ${approvalProgress(r)}`, submenu });
    }
  }

  if (approvals.length) {
    menu.push({ kind: 'separator' }, { kind: 'label', label: `Needs you (${approvals.length})` });
    for (const r of approvals) {
      menu.push({
        kind: 'item',
        label: `${who(r)} → ${resourceName(state, r.resourceId)} · ${r.level}${r.reason ? ` · "${r.reason}"` : ''}`,
        submenu: [
          { kind: 'item', label: 'Approve…', action: { type: 'open', view: 'approve', params: { requestId: r.id } } },
          { kind: 'item', label: 'Deny…', action: { type: 'open', view: 'deny', params: { requestId: r.id } } },
        ],
      });
    }
  }

  if (signedIn && state.resources.length) {
    const byEnv = new Map<string, Resource[]>();
    for (const r of state.resources) byEnv.set(r.environment, [...(byEnv.get(r.environment) ?? []), r]);
    const rank = (env: string) => { const i = ENV_ORDER.indexOf(env.toLowerCase()); return i === -1 ? ENV_ORDER.length : i; };
    const envs = [...byEnv.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    menu.push({ kind: 'separator' }, {
      kind: 'item',
      label: 'Request access',
      enabled: !offline,
      submenu: envs.map((env) => ({
        kind: 'item' as const,
        label: capitalise(env),
        submenu: byEnv.get(env)!.map((r) => ({
          kind: 'item' as const,
          label: `${r.name} (${requestHint(r)})`,
          action: { type: 'open' as const, view: 'request' as const, params: { resourceId: r.id } },
        })),
      })),
    });
  }

  menu.push(
    { kind: 'separator' },
    { kind: 'item', label: 'Open Stint…', action: { type: 'open', view: 'main' } },
    { kind: 'item', label: 'Settings…', action: { type: 'open', view: 'settings' } },
    ...(signedIn ? [{ kind: 'item' as const, label: 'Sign out', action: { type: 'call' as const, method: 'signOut' as const, input: {} } }] : []),
    { kind: 'item', label: 'Quit', action: { type: 'quit' } },
  );

  const soonest = active[0];
  const refresh = Math.min(...active.map((g) => countdownChangesInMs(g.msLeft)));
  return {
    icon,
    title: soonest ? formatCountdown(soonest.msLeft) : '',
    tooltip,
    menu,
    ...(Number.isFinite(refresh) ? { refreshAfterMs: refresh } : {}),
  };
}

/** Notifications for what changed between two snapshots (never for what the user just did in this window). */
export function notificationsFor(prev: AgentState | undefined, next: AgentState, now: number): AgentNotification[] {
  if (!prev || next.session.status !== 'signed_in') return [];
  const out: AgentNotification[] = [];
  const name = (id: string, fallback?: string) => resourceName(next, id, fallback ?? resourceName(prev, id));
  const kindOf = (id: string) => next.resources.find((r) => r.id === id)?.kind;

  const askedBefore = new Set(prev.approvals.filter((r) => r.state === 'pending_approval').map((r) => r.id));
  for (const r of pendingApprovals(next)) {
    if (askedBefore.has(r.id)) continue;
    out.push({
      id: `approval_asked:${r.id}`,
      kind: 'approval_asked',
      title: 'Approval asked',
      body: `${who(r)} wants ${r.level} on ${name(r.resourceId)} for ${formatDuration(r.durationSeconds)}${r.reason ? ` — ${r.reason}` : ''}`,
      // Approve and Deny open the dialog (step-up and the decision happen there); Open shows the approvals.
      actions: ['approve', 'deny', 'open'],
      requestId: r.id,
    });
  }

  const prevRequests = new Map(prev.requests.map((r) => [r.id, r]));
  for (const r of next.requests) {
    const before = prevRequests.get(r.id);
    if (!before || (before.state !== 'pending_approval' && before.state !== 'pending_stepup')) continue;
    if (r.state === 'approved') {
      const local = next.grants.find((g) => g.grant.requestId === r.id || g.grant.id === r.grantId);
      const where = local?.tunnel?.status === 'open' && local.tunnel.port ? `127.0.0.1:${local.tunnel.port}, ` : '';
      out.push({
        id: `approved:${r.id}`,
        kind: 'approved',
        title: 'Access approved',
        body: `${name(r.resourceId)} is ready — ${where}${formatDuration(r.durationSeconds)}`,
        actions: ['open_psql', 'copy_uri'],
        ...(kindOf(r.resourceId) ? { resourceKind: kindOf(r.resourceId)! } : {}),
        requestId: r.id,
        ...(r.grantId ? { grantId: r.grantId } : {}),
      });
    } else if (r.state === 'denied') {
      out.push({
        id: `denied:${r.id}`,
        kind: 'denied',
        title: 'Request denied',
        body: `${name(r.resourceId)} was denied${r.decisionReason ? `: ${r.decisionReason}` : ''}`,
        actions: ['open'],
        requestId: r.id,
      });
    }
  }

  const prevGrants = new Map(prev.grants.map((g) => [g.grant.id, g]));
  for (const g of next.grants) {
    const before = prevGrants.get(g.grant.id);
    const label = name(g.grant.resourceId, g.resourceName);
    if (g.grant.state === 'revoked' && before && before.grant.state !== 'revoked') {
      out.push({
        id: `revoked:${g.grant.id}`,
        kind: 'revoked',
        title: 'Access revoked',
        body: `${label} access was revoked${g.grant.endReason ? `: ${g.grant.endReason}` : ''}`,
        actions: [],
        grantId: g.grant.id,
      });
      continue;
    }
    const endedNow = g.localState === 'ended' && before?.localState === 'active';
    // Ending it yourself ("End now") needs no notification; a deadline, the server, or a failure does.
    if (endedNow && g.grant.state !== 'released') {
      out.push({
        id: `ended:${g.grant.id}`,
        kind: 'ended',
        title: 'Access ended',
        body: `${label} access ended — tunnel closed, credentials wiped`,
        actions: [],
        grantId: g.grant.id,
      });
      continue;
    }
    if (g.phase === 'ending_soon' && g.warnedMinutes !== before?.warnedMinutes) {
      const minutes = Math.max(1, Math.ceil(msLeft(g, now) / 60_000));
      out.push({
        id: `expiring:${g.grant.id}`,
        kind: 'expiring',
        title: 'Access ending soon',
        body: `${label} ends in ${minutes} minute${minutes === 1 ? '' : 's'}`,
        actions: ['extend'],
        grantId: g.grant.id,
      });
    }
  }
  return out;
}

/** A reminder from the server (policy `reminders`): the request still waits for me; the same actions as when asked. */
export function reminderNotification(r: AccessRequest, eventId: string): AgentNotification {
  return {
    id: `approval_reminder:${r.id}:${r.asked?.remindersSent ?? eventId}`,
    kind: 'approval_asked',
    title: 'Reminder: approval asked',
    body: `${who(r)} still waits for a decision on ${r.level} for ${r.resourceId} (${formatDuration(r.durationSeconds)})${r.reason ? ` — ${r.reason}` : ''}`,
    actions: ['approve', 'deny', 'open'],
    requestId: r.id,
  };
}
