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

/** An active grant on an SSH target host (a resource of its own, reached through a bastion): issue #23. */
export interface HostGrant {
  grantId: string;
  owner: string;
  /** Epoch ms. */
  endsAt: number;
  /** The grant's access level: which logins on the host it opens (the host's config maps levels to logins). */
  level: string;
}

export interface GrantEndedForBastion {
  grantId: string;
  bastionId: string;
  /** The grant's resource: an SSH target host that is this resource streams the end too. */
  resourceId?: string;
  /** base64 body of the grant's ssh-ed25519 public key (what sshd passes as %k). */
  keyBase64: string;
  /** When the grant ended, epoch ms. */
  at: number;
  /**
   * Set when the grant did not end but was taken back with a new key (issue #21): `keyBase64` is the old key, `at`
   * the instant the new one replaced it, and only the sessions recorded until then are to be ended.
   */
  cause?: 'rekeyed';
}

export interface BastionGrantLookup {
  /** The active grant (if any) whose activation public key is exactly this key, on a resource behind this bastion. */
  findActiveGrantByKey(bastionId: string, keyType: string, keyBase64: string): Promise<BastionGrant | undefined>;
  /**
   * The active grant on this SSH target host (a resource) whose activation key is exactly this key. A lookup without
   * it serves no target hosts (their key command gets nothing).
   */
  findActiveHostGrant?(resourceId: string, keyType: string, keyBase64: string): Promise<HostGrant | undefined>;
  /** Grants on this SSH target host that ended after `since` (epoch ms), oldest first. */
  endedOnHostSince?(resourceId: string, since: number): Promise<GrantEndedForBastion[]>;
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
