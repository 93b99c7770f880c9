// The admin routes of policy as code (#25), as /v1 API specs: reload the config file now, and read the policy
// version history with diffs (what the admin console shows).
import { PolicyHistory, PolicyHistoryQuery, ReloadConfigBody, ReloadConfigResult } from '../../shared/contract/policy';
import { fail, ok } from '../errors';
import { route, type RouteSpec } from '../http/routes';
import type { Catalog } from '../lifecycle/catalog';
import type { ConfigReloader } from './reload';
import type { PolicyVersions } from './versions';

export interface PolicyRouteDeps {
  reloader: Pick<ConfigReloader, 'reload'>;
  versions: Pick<PolicyVersions, 'history'>;
  catalog: () => Catalog;
}

export function policyRoutes(deps: PolicyRouteDeps): RouteSpec[] {
  return [
    route({
      method: 'POST', url: '/v1/admin/config/reload', access: 'admin',
      refusal: { action: 'config.reload', message: 'only administrators may reload the configuration' },
      operationId: 'reloadConfig', summary: 'Reload policies, resources and bastions from the config file now (admins); an invalid file is refused and the running config kept', tags: ['admin'],
      body: ReloadConfigBody, response: ReloadConfigResult, problems: [403, 422],
      handler: async ({ user }) => {
        const result = await deps.reloader.reload('api', user.sub);
        if (result.outcome === 'refused') return fail(422, 'config_reload_refused', `the config file was not applied; the running config is kept: ${result.errors.map((e) => `${e.path || '(top)'}: ${e.message}`).join('; ')}`, { errors: result.errors });
        return ok(result);
      },
    }),
    route({
      method: 'GET', url: '/v1/admin/policies/history', access: 'admin',
      refusal: { action: 'policy.history', message: 'only administrators may read the policy history' },
      operationId: 'policyHistory', summary: 'Policy versions, newest first, each with its content and its diff from the version before (admins)', tags: ['admin'],
      query: PolicyHistoryQuery, response: PolicyHistory, problems: [403],
      handler: async ({ query }) => {
        const catalog = deps.catalog();
        const versions = await deps.versions.history({ policyId: query.policyId, limit: query.limit });
        return ok({
          versions: versions.map((v) => ({
            policyId: v.policyId, version: v.version, hash: v.hash, createdAt: new Date(v.createdAt).toISOString(),
            current: Object.hasOwn(catalog.config.policies, v.policyId) && catalog.policyVersion(v.policyId) === v.version,
            ...(v.policy ? { policy: v.policy as Record<string, unknown> } : {}), diff: v.diff,
          })),
        });
      },
    }),
  ];
}
