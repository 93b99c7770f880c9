// The admin console's routes (issue #25), all declared 'admin' (the router refuses anyone else, audited): live and
// ending grants with pending requests, the audit searched newest first by keyset cursor, its export streamed as JSON
// Lines or CSV, and the chain's verify status (run on demand in the background). Revoking is the existing
// POST /v1/grants/:id/revoke (http/routes.ts): the lifecycle's revoke, on the same path as a deadline.
import { Readable, pipeline } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { z } from 'zod';
import {
  AdminAuditQuery, AdminLive, AUDIT_CSV_COLUMNS, AuditExportQuery, AuditPage, AuditVerifyStatus, VerifyBody, type AuditFilterFields,
} from '../../shared/contract/admin';
import type { Clock } from '../../shared/domain/clock';
import { ok } from '../errors';
import { adminLive } from '../lifecycle/admin-views';
import { toAuditEntry } from '../lifecycle/audit';
import { auditPage, auditRowsAscending, type AuditFilter } from '../lifecycle/audit-search';
import type { AuditVerifier } from '../lifecycle/audit-verify-status';
import type { Lifecycle } from '../lifecycle/service';
import type { Store } from '../storage/db';
import { apiRoute } from './api';
import { sendProblem, zodErrors } from './problem';
import type { Route } from './router';
import type { RouteSpec } from './routes';

export interface AdminRouteDeps {
  store: Store;
  clock: Clock;
  lifecycle: Lifecycle;
  auditVerifier: AuditVerifier;
}

const tags = ['admin'];

/** The filter fields as the search takes them: instants as epoch ms. */
export function auditFilter(fields: AuditFilterFields): AuditFilter {
  const { from, to, ...rest } = fields;
  return {
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    ...(from ? { fromMs: Date.parse(from) } : {}),
    ...(to ? { toMs: Date.parse(to) } : {}),
  };
}

function spec<B extends z.ZodType, Q extends z.ZodType>(s: RouteSpec<B, Q>): RouteSpec {
  return s as unknown as RouteSpec;
}

export function adminRoutes(deps: AdminRouteDeps): Route[] {
  const specs: RouteSpec[] = [
    spec({
      method: 'GET', url: '/v1/admin/live', access: 'admin', operationId: 'adminLive', tags,
      summary: 'Active grants (soonest end first), grants still ending (credentials not yet confirmed revoked) and pending requests, with who, what, why and approvers',
      response: AdminLive,
      handler: async () => ok(await adminLive(deps.store.db, deps.clock.now())),
    }),
    spec({
      method: 'GET', url: '/v1/admin/audit', access: 'admin', operationId: 'adminAudit', tags,
      summary: 'Audit entries newest first, filtered; page with `before` = the previous page\'s `next` (keyset, as fast at a million rows as at ten)',
      query: AdminAuditQuery, response: AuditPage,
      handler: async ({ query }) => {
        const { before, limit, ...fields } = query;
        const rows = await auditPage(deps.store.db, auditFilter(fields), { order: 'desc', limit, ...(before ? { from: before } : {}) });
        const last = rows.at(-1);
        return ok({ entries: rows.map(toAuditEntry), ...(rows.length === limit && last ? { next: last.seq } : {}) });
      },
    }),
    spec({
      method: 'GET', url: '/v1/admin/audit/verify', access: 'admin', operationId: 'adminAuditVerifyStatus', tags,
      summary: 'The last verification of the audit chain (against the signed checkpoints when configured) and the newest checkpoint; never waits for a run',
      response: AuditVerifyStatus,
      handler: async () => ok(deps.auditVerifier.status()),
    }),
    spec({
      method: 'POST', url: '/v1/admin/audit/verify', access: 'admin', operationId: 'adminAuditVerify', tags,
      summary: 'Start verifying the audit chain in the background (one run at a time); answers at once with the status',
      body: VerifyBody, response: AuditVerifyStatus, status: 202,
      handler: async () => ok(deps.auditVerifier.start()),
    }),
  ];
  return [...specs.map((s) => apiRoute(s, deps)), exportRoute(deps)];
}

/** Streamed from the database in pages of 1000 with backpressure: memory stays flat however many rows match. */
function exportRoute(deps: AdminRouteDeps): Route {
  return {
    method: 'GET', url: '/v1/admin/audit/export', access: 'admin',
    doc: {
      operationId: 'adminAuditExport', tags,
      summary: 'Every audit entry the filter matches, oldest first (chain order), as JSON Lines (one AuditEntry per line) or CSV (a header row, `detail` as JSON; cells a spreadsheet would run as a formula are prefixed with \')',
      query: AuditExportQuery,
      response: { description: 'The entries, streamed', type: 'application/x-ndjson' },
      problems: [400],
    },
    handler: async (request, reply) => {
      const parsed = AuditExportQuery.safeParse(request.query ?? {});
      if (!parsed.success) return sendProblem(reply, { status: 400, code: 'invalid_query', message: 'the query string does not match the schema', errors: zodErrors(parsed.error) });
      const { format, ...fields } = parsed.data;
      // Who took a copy of the audit, and of what, is itself on the record.
      const given = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
      await deps.lifecycle.auditReported([{ actor: request.user.sub, action: 'audit.exported', detail: { format, filter: given } }]);
      const entries = async function* () {
        for await (const row of auditRowsAscending(deps.store.db, auditFilter(fields))) yield toAuditEntry(row);
      };
      const stamp = new Date(deps.clock.now()).toISOString().replace(/[:.]/g, '-');
      reply.header('content-disposition', `attachment; filename="stint-audit-${stamp}.${format}"`);
      if (format === 'jsonl') {
        return reply.type('application/x-ndjson; charset=utf-8').send(Readable.from((async function* () {
          for await (const entry of entries()) yield `${JSON.stringify(entry)}\n`;
        })()));
      }
      const csv = stringify({ header: true, columns: [...AUDIT_CSV_COLUMNS], escape_formulas: true });
      const records = Readable.from((async function* () {
        for await (const entry of entries()) yield { ...entry, detail: entry.detail ? JSON.stringify(entry.detail) : undefined };
      })());
      // A failure mid-stream aborts the response (no clean end), so a client cannot mistake a cut file for a whole one.
      pipeline(records, csv, (error) => { if (error) request.log.error({ err: error }, 'audit export failed mid-stream'); });
      return reply.type('text/csv; charset=utf-8').send(csv);
    },
  };
}
