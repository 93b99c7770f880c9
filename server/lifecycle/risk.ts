// Risk: a score 0–100 with the reasons an approver reads. Signals: resource sensitivity, a device or source IP
// not seen before for this user, a request outside the user's usual hours, a burst of requests, recent failed
// step-ups. The score drives `on-risk` step-up and auto-approval.
import type { RiskAssessment } from '../../shared/contract/http';

export interface RiskSignals {
  sensitivity: 'low' | 'medium' | 'high';
  deviceId?: string;
  deviceSeen: boolean;
  ip?: string;
  ipSeen: boolean;
  /** UTC hours (0–23) of the user's earlier requests (recent history). */
  usualHours: number[];
  hourNow: number;
  recentRequests: number;
  recentFailedStepUps: number;
}

export const RISK_WEIGHTS = {
  sensitivity: { low: 0, medium: 15, high: 35 },
  newDevice: 15,
  /** Never less than a new device: leaving the id out must not look safer than sending an unknown one. */
  noDevice: 15,
  newIp: 10,
  unusualHour: 10,
  burst: 20,
  /** Per failed step-up in the last hour, capped at three. */
  failedStepUp: 10,
};
export const BURST_WINDOW_MS = 10 * 60_000;
export const BURST_COUNT = 5;
export const HOURS_HISTORY_MIN = 5;

export function assessRisk(s: RiskSignals): RiskAssessment {
  let score = 0;
  const reasons: string[] = [];
  const add = (points: number, reason: string) => { if (points > 0) { score += points; reasons.push(reason); } };
  add(RISK_WEIGHTS.sensitivity[s.sensitivity], `${s.sensitivity}-sensitivity resource`);
  if (!s.deviceId) add(RISK_WEIGHTS.noDevice, 'no device id sent');
  else if (!s.deviceSeen) add(RISK_WEIGHTS.newDevice, 'new device for this user');
  if (s.ip && !s.ipSeen) add(RISK_WEIGHTS.newIp, `new source address ${s.ip} for this user`);
  if (s.usualHours.length >= HOURS_HISTORY_MIN) {
    // Usual = within an hour of some earlier request's hour (wrapping midnight).
    const usual = s.usualHours.some((h) => Math.min((h - s.hourNow + 24) % 24, (s.hourNow - h + 24) % 24) <= 1);
    if (!usual) add(RISK_WEIGHTS.unusualHour, `outside this user's usual hours (${String(s.hourNow).padStart(2, '0')}:00 UTC)`);
  }
  if (s.recentRequests >= BURST_COUNT) add(RISK_WEIGHTS.burst, `burst: ${s.recentRequests} requests in the last 10 minutes`);
  if (s.recentFailedStepUps > 0) add(RISK_WEIGHTS.failedStepUp * Math.min(3, s.recentFailedStepUps), `${s.recentFailedStepUps} failed step-up(s) in the last hour`);
  return { score: Math.min(100, score), reasons };
}
