// Whether approving a request needs a fresh step-up, and with which methods. One answer for the approve route, which
// enforces it, and for the views that tell approvers beforehand (`AccessRequest.approvalStepUp`): they cannot disagree.
// It depends on the request alone (the policy version it was evaluated under and its risk), never on the approver.
import type { AccessRequest, StepUpMethod } from '../../shared/contract/http';
import type { CatalogSource, RequestRow } from './support';

export interface ApproveStepUpNeed {
  needed: boolean;
  methods: StepUpMethod[];
  userVerification: boolean;
}

/** Under the policy version the request was evaluated under, whatever was reloaded since (#25). */
export async function approveStepUpNeed(policies: CatalogSource, row: Pick<RequestRow, 'policy_id' | 'policy_version' | 'risk_score'>): Promise<ApproveStepUpNeed> {
  const policy = await policies.recordedPolicy(row);
  if (!policy) return { needed: false, methods: [], userVerification: true };
  return { needed: policies.catalog.stepUpNeeded(policy.stepUp.approve, policy, row.risk_score), methods: policy.stepUp.methods as StepUpMethod[], userVerification: policy.stepUp.userVerification };
}

/** What a request pending approval tells its approvers; nothing for a request in any other state. */
export async function approvalStepUpView(policies: CatalogSource, row: Pick<RequestRow, 'state' | 'policy_id' | 'policy_version' | 'risk_score'>): Promise<AccessRequest['approvalStepUp']> {
  if (row.state !== 'pending_approval') return undefined;
  const need = await approveStepUpNeed(policies, row);
  return { required: need.needed, methods: need.needed ? need.methods : [] };
}
