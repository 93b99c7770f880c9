// The catalog: resources with their policies, who may request what, what each request needs (approvals, step-up,
// auto-approval, break-glass) and who hears about it. Pure functions over the config; no storage.
import type { PolicySummary, Resource, StepUpMethod } from '../../shared/contract/http';
import type { PolicyConfig, ResourceConfig, ServerConfig } from '../config';
import { resourceDatabase } from '../targets/registry';

export interface ApprovalRule { group: string; count: number }

export interface CatalogEntry {
  resource: ResourceConfig;
  policyId: string;
  policy: PolicyConfig;
}

/** Who asks: a person (groups) or a service identity (`service`, no groups: policies name it in services.requesters). */
export interface Caller { sub: string; groups: string[]; admin: boolean; service?: string }

/** What a service's request needs under a policy: always a ticket; auto-approval only inside the change window. */
export interface ServiceRules { ticket: { pattern: string; required: true }; window?: string; outsideWindow: 'approval' | 'refuse' }

const inAny = (groups: string[], wanted: string[]) => groups.some((g) => wanted.includes(g));

export class Catalog {
  private readonly byId = new Map<string, CatalogEntry>();

  constructor(readonly config: ServerConfig, private readonly versions: Map<string, number>) {
    for (const resource of config.resources) {
      this.byId.set(resource.id, { resource, policyId: resource.policy, policy: config.policies[resource.policy]! });
    }
  }

  entry(resourceId: string): CatalogEntry | undefined {
    return this.byId.get(resourceId);
  }

  policyVersion(policyId: string): number {
    return this.versions.get(policyId) ?? 1;
  }

  canRequest(caller: Caller, entry: CatalogEntry): boolean {
    return this.isRequester(caller, entry) || this.canBreakGlass(caller, entry);
  }

  /** A requester of the policy without break-glass: in a requester group, or a service the policy names. */
  isRequester(caller: Caller, entry: CatalogEntry): boolean {
    if (caller.service) return entry.policy.services?.requesters.includes(caller.service) ?? false;
    return inAny(caller.groups, entry.policy.requesters);
  }

  /** The policy's rules for a service's requests (undefined for people). */
  serviceRules(caller: Caller, entry: CatalogEntry): ServiceRules | undefined {
    const services = entry.policy.services;
    if (!caller.service || !services) return undefined;
    return { ticket: { pattern: services.ticket.pattern, required: true }, ...(services.autoApprove ? { window: services.autoApprove.window } : {}), outsideWindow: services.outsideWindow };
  }

  canBreakGlass(caller: Caller, entry: CatalogEntry): boolean {
    return !!entry.policy.breakGlass && inAny(caller.groups, entry.policy.breakGlass.groups);
  }

  /** Resources the caller may request, with what a request will take. */
  eligible(caller: Caller): Resource[] {
    const out: Resource[] = [];
    for (const entry of this.byId.values()) {
      if (!this.canRequest(caller, entry)) continue;
      out.push({
        id: entry.resource.id,
        name: entry.resource.name,
        environment: entry.resource.environment,
        sensitivity: entry.resource.sensitivity,
        kind: entry.resource.kind,
        levels: Object.keys(entry.resource.levels),
        database: resourceDatabase(entry.resource),
        policy: this.summary(caller, entry),
      });
    }
    return out;
  }

  summary(caller: Caller, entry: CatalogEntry): PolicySummary {
    const { policy } = entry;
    const service = this.serviceRules(caller, entry);
    const ticket = service?.ticket ?? policy.ticket;
    return {
      policyId: entry.policyId,
      policyVersion: this.policyVersion(entry.policyId),
      durationDefaultSeconds: policy.duration.default,
      durationMaxSeconds: policy.duration.max,
      reasonRequired: policy.reason === 'required',
      ticketPattern: ticket?.pattern,
      ticketRequired: ticket?.required ?? false,
      approvals: this.rules(entry),
      autoApprove: service ? !!service.window : !!policy.autoApprove,
      stepUp: { request: service ? 'never' : policy.stepUp.request, approve: policy.stepUp.approve, methods: policy.stepUp.methods as StepUpMethod[] },
      breakGlass: this.canBreakGlass(caller, entry),
      extend: { maxTotalSeconds: policy.extend?.maxTotal ?? policy.duration.max, reapproval: policy.extend?.reapproval ?? false },
    };
  }

  rules(entry: CatalogEntry): ApprovalRule[] {
    return entry.policy.approvals.map((r) => ({ group: r.from, count: r.count }));
  }

  /** Is the caller an approver of anything (member of some approval group)? */
  isApprover(caller: Caller): boolean {
    for (const entry of this.byId.values()) if (inAny(caller.groups, entry.policy.approvals.map((r) => r.from))) return true;
    return false;
  }

  stepUpNeeded(mode: 'always' | 'on-risk' | 'never', policy: PolicyConfig, risk: number): boolean {
    return mode === 'always' || (mode === 'on-risk' && risk >= policy.stepUp.riskAtLeast);
  }

  /** All auto-approve conditions that are set must hold. A service: only its change window counts. */
  autoApproves(caller: Caller, entry: CatalogEntry, risk: number, now: number): { ok: boolean; why: string } {
    const service = this.serviceRules(caller, entry);
    if (service) {
      if (!service.window) return { ok: false, why: 'services need approval under this policy' };
      return inHours(service.window, now) ? { ok: true, why: `auto-approved inside the change window ${service.window} UTC` } : { ok: false, why: `outside the change window ${service.window} UTC` };
    }
    const when = entry.policy.autoApprove?.when;
    if (!when) return { ok: false, why: 'policy needs approvals' };
    if (when.groups && !inAny(caller.groups, when.groups)) return { ok: false, why: 'not in an auto-approved group' };
    if (when.environments && !when.environments.includes(entry.resource.environment)) return { ok: false, why: 'environment not auto-approved' };
    if (when.hours && !inHours(when.hours, now)) return { ok: false, why: 'outside auto-approve hours' };
    if (when.riskBelow !== undefined && risk >= when.riskBelow) return { ok: false, why: `risk ${risk} is not below ${when.riskBelow}` };
    return { ok: true, why: 'auto-approved by policy' };
  }

  /** Who hears about a break-glass use: the policy's approvers, its notify groups and the admins. */
  breakGlassAudience(entry: CatalogEntry): string[] {
    return [...new Set([...entry.policy.approvals.map((r) => r.from), ...(entry.policy.breakGlass?.notify ?? []), ...this.config.identity.adminGroups])];
  }
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/** The minute of the UTC day (0–1439) an instant (epoch ms) falls in: a UTC day is exactly 86,400,000 ms in JS time. */
export function utcMinuteOfDay(ms: number): number {
  return Math.floor((((ms % DAY_MS) + DAY_MS) % DAY_MS) / MINUTE_MS);
}

/** "09:00-18:00" in UTC; a window that wraps midnight ("22:00-06:00") works too. `now` is epoch ms. */
export function inHours(window: string, now: number): boolean {
  const [from, to] = window.split('-').map((t) => { const [h, m] = t.split(':').map(Number); return h! * 60 + m!; }) as [number, number];
  const minute = utcMinuteOfDay(now);
  return from <= to ? minute >= from && minute < to : minute >= from || minute < to;
}

/**
 * N-of-M with distinct people: can each rule's slots be filled by different approvers, each person filling at
 * most one slot? Solved as a bipartite matching (people ↔ slots), so the order of approvals never matters.
 * Returns the group each approver was matched to and how many slots each rule has filled.
 */
export function matchApprovals(rules: ApprovalRule[], approvers: { sub: string; groups: string[] }[]): { assignment: Map<string, string>; have: number[]; complete: boolean } {
  const slots: number[] = [];
  rules.forEach((rule, index) => { for (let i = 0; i < rule.count; i++) slots.push(index); });
  const slotOwner: (number | undefined)[] = slots.map(() => undefined);
  const tryAssign = (person: number, seen: Set<number>): boolean => {
    for (let s = 0; s < slots.length; s++) {
      if (seen.has(s) || !approvers[person]!.groups.includes(rules[slots[s]!]!.group)) continue;
      seen.add(s);
      if (slotOwner[s] === undefined || tryAssign(slotOwner[s]!, seen)) {
        slotOwner[s] = person;
        return true;
      }
    }
    return false;
  };
  approvers.forEach((_, person) => tryAssign(person, new Set()));
  const assignment = new Map<string, string>();
  const have = rules.map(() => 0);
  slotOwner.forEach((person, s) => {
    if (person === undefined) return;
    assignment.set(approvers[person]!.sub, rules[slots[s]!]!.group);
    have[slots[s]!]! += 1;
  });
  return { assignment, have, complete: slotOwner.every((p) => p !== undefined) };
}
