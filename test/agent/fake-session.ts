import type { SessionLike } from '../../agent/core/agent';
import type { SessionStatus } from '../../agent/core/session';

/** A signed-in session without an IdP, for agent tests whose subject is not sign-in (session.test.ts covers that). */
export class FakeSession implements SessionLike {
  status: SessionStatus = { status: 'signed_in', user: { sub: 'alice', email: 'alice@example.com', groups: ['engineers'] } };
  async restore() { return this.status.status === 'signed_in'; }
  async signIn() { this.status = { status: 'signed_in', user: { sub: 'alice', groups: [] } }; return this.status.user; }
  cancelSignIn() {}
  async accessToken() { return 'token'; }
  async refresh() { return 'token'; }
  async signOut() { this.status = { status: 'signed_out' }; return { revoked: true }; }
}
