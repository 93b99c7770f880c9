import type { DialogSpec, View } from './context';

/**
 * How the tray and deep links open a window: `?view=<section>` (active, waiting, resources, approvals, history,
 * settings, main) or the tray's dialog views with their params — `?view=request&resourceId=…`,
 * `?view=stepup&requestId=…`, `?view=resume&grantId=…&requestId=…`, `?view=approve&requestId=…`,
 * `?view=deny&requestId=…`, `?view=extend&grantId=…`.
 */
export function routeFrom(search: string, views: readonly View[]): { view?: View; dialog?: DialogSpec } {
  const params = new URLSearchParams(search);
  const view = params.get('view');
  const resourceId = params.get('resourceId');
  const requestId = params.get('requestId');
  const grantId = params.get('grantId');
  if (view === 'request' && resourceId) return { view: 'resources', dialog: { kind: 'request', resourceId } };
  if (view === 'stepup' && requestId) return { view: 'waiting', dialog: { kind: 'stepup', action: 'request', requestId } };
  if ((view === 'approve' || view === 'deny') && requestId) return { view: 'approvals', dialog: { kind: view, requestId } };
  if (view === 'extend' && grantId) return { view: 'active', dialog: { kind: 'extend', grantId } };
  // The tray's Resume, refused for a step-up: the step-up of taking grant `grantId` back (its request's challenge).
  if (view === 'resume' && grantId && requestId) return { view: 'active', dialog: { kind: 'stepup', action: 'resume', requestId, grantId } };
  if (view === 'main') return {};
  return views.includes(view as View) ? { view: view as View } : {};
}
