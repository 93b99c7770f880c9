// The seam between the grant lifecycle and the systems that hold real access. The lifecycle calls these at
// activation, extension and end; a provider per resource kind (server/targets/<kind>/), composed by server/targets/registry.ts.
// Every method is idempotent: the lifecycle retries revoke with backoff until it succeeds.

export interface IssueInput {
  grantId: string;
  /** Resource id from config; the provider looks up target and admin connection itself. */
  resourceId: string;
  level: string;
  /** Absolute end of the grant, epoch ms (server clock). */
  endsAt: number;
}

export interface IssuedCredential {
  /** Database role name, random. Stored by the lifecycle so revoke can find it after a restart. */
  username: string;
  /** Returned once to the grant owner; never stored by the server in clear. */
  password: string;
}

export interface CredentialProvider {
  readonly kind: string;
  issue(input: IssueInput): Promise<IssuedCredential>;
  extend(input: { grantId: string; resourceId: string; username: string; /** Epoch ms. */ endsAt: number }): Promise<void>;
  /**
   * A new password for a grant's existing role, for a grant taken back after its agent lost the old one (rekey): the
   * new password is set first, so the old one stops logging in, then every live session of the role is ended (none
   * can have been opened with the new password: nobody has it yet). Privileges and VALID UNTIL are unchanged.
   * Fails with `not_found` when the role is gone (the grant ended meanwhile).
   */
  rotate(input: { grantId: string; resourceId: string; username: string }): Promise<{ password: string }>;
  /** NOLOGIN → terminate live sessions → reassign/drop owned → drop role. Succeeds when already gone. */
  revoke(input: { grantId: string; resourceId: string; username: string }): Promise<void>;
  /**
   * What would let a grant reach beyond its resource, in words with the fix (e.g. a database whose CONNECT is granted
   * to PUBLIC, so a role granted one database can log in to every other on the server). Checked at start.
   */
  isolationProblems?(): Promise<string[]>;
  /** What an operator should know that is not a problem (a limit of the target, and how Stint makes up for it). Said at start. */
  notices?(): Promise<string[]>;
  close(): Promise<void>;
}
