// What the bastion routes need from the grant lifecycle. The lifecycle (server/) implements it over its store and
// event bus; server/bastion/routes.ts serves the sshd AuthorizedKeysCommand and the kill companion from it.
import type { Grant } from '../../shared/contract/http';
import type { ReportedAudit } from '../lifecycle/audit';

export interface BastionGrant {
  grantId: string;
  owner: string;
  /** Epoch ms. */
  endsAt: number;
  /** The one host:port this grant may forward to (the resource's target). */
  target: { host: string; port: number };
}

export interface GrantEndedForBastion {
  grantId: string;
  bastionId: string;
  /** base64 body of the grant's ssh-ed25519 public key (what sshd passes as %k). */
  keyBase64: string;
  /** When the grant ended, epoch ms. */
  at: number;
}

export interface BastionGrantLookup {
  /** The active grant (if any) whose activation public key is exactly this key, on a resource behind this bastion. */
  findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined>;
  /** Grants behind this bastion that ended (ended, released, revoked, failed) after `since` (epoch ms), oldest first. */
  endedSince(bastionId: string, since: number): Promise<GrantEndedForBastion[]>;
  /** Live notification of grant ends; returns an unsubscribe function. */
  /**
   * `wanted`: whether the listener wants ends right now (e.g. a bastion stream is open here); while no listener does,
   * ends committed by other instances are not looked up at all.
   */
  onGrantEnded(listener: (event: GrantEndedForBastion) => void, wanted?: () => boolean): () => void;
  /**
   * Append rows to the audit log (the lifecycle's hash chain): SSH sessions opened through the bastion, and closed or
   * killed at a grant's end. A lookup without it (tests of the routes alone) audits nothing.
   */
  auditReported?(rows: readonly ReportedAudit[]): Promise<void>;
  /** A grant as the API shows it (whose it is, its resource, whether and why it ended), to describe a session's end. */
  grantById?(id: string): Promise<Pick<Grant, 'owner' | 'resourceId' | 'state' | 'endedAt' | 'endReason'> | undefined>;
}
