// The admin view of the outbound webhooks: each endpoint's last delivery, failures and backlog (status.ts).
import { WebhookStatusList } from '../../shared/contract/webhooks';
import type { ServerConfig } from '../config';
import type { Route } from '../http/router';
import type { Store } from '../storage/db';
import { webhookStatus } from './status';

export function webhookAdminRoutes(deps: { store: Store; config: ServerConfig; env?: NodeJS.ProcessEnv }): Route[] {
  return [
    {
      method: 'GET', url: '/v1/admin/webhooks', access: 'admin',
      refusal: { action: 'webhooks.read', message: 'only administrators may see the webhook endpoints' },
      doc: {
        operationId: 'listWebhookEndpoints', summary: 'Webhook endpoints with their last delivery, failures and backlog (admins)', tags: ['admin'],
        response: WebhookStatusList, problems: [403],
      },
      handler: async () => ({ endpoints: await webhookStatus(deps.store.db, deps.config, deps.env) }),
    },
  ];
}
