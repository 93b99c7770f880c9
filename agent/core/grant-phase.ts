// A grant's phase (shared/contract/agent.ts GrantPhase), worked out here and nowhere else: the core publishes it with
// each grant, and every host (tray, windows, CLI) shows it rather than deciding liveness or warnings for itself.
import type { GrantPhase } from '../../shared/contract/agent';
import type { Grant } from '../../shared/contract/http';

export interface PhaseInputs {
  /** Whether this computer has ended local access (deadline, release, revoke, sign-out). */
  localState: 'active' | 'ended';
  /** The grant's state as the server last said. */
  grantState: Grant['state'];
  /** The most urgent expiry warning given that still stands (the deadline scheduler's), in minutes. */
  warnedMinutes?: number;
}

export function grantPhase({ localState, grantState, warnedMinutes }: PhaseInputs): GrantPhase {
  // Access is live only while both the server and this computer say so (the agent ends it locally on time).
  if (localState !== 'active' || grantState !== 'active') return 'ended';
  return warnedMinutes !== undefined ? 'ending_soon' : 'active';
}
