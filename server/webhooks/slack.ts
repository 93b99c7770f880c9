// The `slack` format: a Slack incoming-webhook message (text for notifications, Block Kit blocks for the channel) made
// from the standard event. A request that waits for approvers gets a link button to the server's approval page.
import { formatDuration } from '../../shared/domain/duration';
import type { WebhookEvent } from './events';

export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

export type SlackBlock =
  | { type: 'section'; text: { type: 'mrkdwn'; text: string } }
  | { type: 'context'; elements: { type: 'mrkdwn'; text: string }[] }
  | { type: 'actions'; elements: { type: 'button'; text: { type: 'plain_text'; text: string }; url: string; action_id: string; style?: 'primary' | 'danger' }[] };

/** Slack's three control characters; everything else in user text is shown as typed. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);

/** One line saying what happened, in Slack mrkdwn (user-supplied parts escaped). */
function headline(event: WebhookEvent): string {
  const d = event.data;
  const who = `*${esc(d.subject ?? d.actor)}*`;
  const by = `*${esc(d.actor)}*`;
  const where = `*${esc(d.resourceName ?? d.resourceId ?? 'a resource')}*`;
  const why = d.reason ? ` — “${esc(d.reason)}”` : '';
  const level = str(d.detail?.level);
  const seconds = typeof d.detail?.durationSeconds === 'number' ? d.detail.durationSeconds : undefined;
  switch (event.type) {
    case 'request.created':
      return `${who} asks for ${level ? `*${esc(level)}* on ` : ''}${where}${seconds ? ` for ${formatDuration(seconds)}` : ''}${why}`;
    case 'request.awaiting_approval': {
      const asked = str(d.detail?.requestReason);
      return `${who} asks for ${level ? `*${esc(level)}* on ` : ''}${where}${seconds ? ` for ${formatDuration(seconds)}` : ''}${asked ? ` — “${esc(asked)}”` : ''} (identity verified)`;
    }
    case 'request.approved': return `${who}’s request for ${where} was approved${d.actor === 'system' ? ' by policy' : ` by ${by}`}`;
    case 'request.denied': return `${who}’s request for ${where} was denied by ${by}${why}`;
    case 'request.expired': return `${who}’s request for ${where} expired${why}`;
    case 'request.cancelled': return `${who} withdrew the request for ${where}`;
    case 'grant.active': return `${who} has access to ${where} now`;
    case 'grant.extended': return `${who}’s access to ${where} was extended${why}`;
    case 'grant.ended': return `${who}’s access to ${where} ended${why}`;
    case 'grant.revoked': return `${who}’s access to ${where} was revoked by ${by}${why}`;
    case 'breakglass.used': return `:rotating_light: ${who} used *break-glass* on ${where}${why}. A review is due.`;
    case 'breakglass.reviewed': return `Break-glass use by ${who} on ${where} reviewed by ${by}: *${esc(str(d.detail?.outcome) ?? '?')}*${why}`;
    case 'breakglass.review_overdue': return `:warning: The review of ${who}’s break-glass use on ${where} is overdue`;
    case 'stepup.failures': return `:warning: ${by} failed step-up ${String(d.detail?.failuresLastHour ?? '')} times in the last hour`;
    case 'factor.changed': return `${who}’s sign-in factors changed (${esc(d.action.replace(/^stepup\./, ''))})`;
    default: return `${esc(event.type)} by ${by}`;
  }
}

export function slackMessage(event: WebhookEvent): SlackMessage {
  const text = headline(event);
  const blocks: SlackBlock[] = [
    { type: 'section', text: { type: 'mrkdwn', text } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: `Stint · ${esc(event.type)}${event.data.requestId ? ` · ${esc(event.data.requestId)}` : ''}` }] },
  ];
  if (event.data.approveUrl) {
    blocks.push({ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Review and approve' }, url: event.data.approveUrl, action_id: 'stint_open_approval', style: 'primary' }] });
  }
  return { text, blocks };
}
