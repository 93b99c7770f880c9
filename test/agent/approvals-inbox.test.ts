// An approver's inbox keeps only requests that still need them.
import { describe, expect, it } from 'vitest';
import { waitsForApprover } from '../../shared/domain/approvals';
import type { AccessRequest } from '../../shared/contract/http';

const request = (overrides: Partial<AccessRequest> = {}): AccessRequest => ({
  id: 'r1', requester: 'alice', resourceId: 'prod-orders', level: 'write', durationSeconds: 3600, reason: 'INC-1', breakGlass: false,
  state: 'pending_approval', policyVersion: 1, risk: { score: 40, reasons: [] }, approvals: [],
  approvalsNeeded: [{ group: 'dba', count: 1, have: 0 }, { group: 'sre-leads', count: 1, have: 0 }],
  stepUpRequired: false, stepUpMethods: [], createdAt: '2026-11-26T10:00:00Z', expiresAt: '2026-11-26T10:30:00Z', ...overrides,
});
const bob = { sub: 'bob', groups: ['dba'] };
const carol = { sub: 'carol', groups: ['admins', 'dba'] };

describe('approvals inbox', () => {
  it('shows a pending request to someone from a group with an open slot', () => {
    expect(waitsForApprover(request(), bob)).toBe(true);
  });
  it('drops it once I approved, or when someone else filled my group\'s slot', () => {
    const approvedByBob = request({ approvals: [{ approver: 'bob', group: 'dba', at: '2026-11-26T10:01:00Z' }], approvalsNeeded: [{ group: 'dba', count: 1, have: 1 }, { group: 'sre-leads', count: 1, have: 0 }] });
    expect(waitsForApprover(approvedByBob, bob)).toBe(false);
    expect(waitsForApprover(approvedByBob, carol)).toBe(false);
  });
  it('never shows requesters their own request, nor decided requests', () => {
    expect(waitsForApprover(request({ requester: 'bob' }), bob)).toBe(false);
    expect(waitsForApprover(request({ state: 'approved' }), bob)).toBe(false);
    expect(waitsForApprover(request({ state: 'pending_stepup' }), bob)).toBe(false);
  });
});
