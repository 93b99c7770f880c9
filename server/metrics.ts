// Prometheus metrics, one registry per server instance (tests run several in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly http = new Counter({ name: 'stint_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
  readonly httpDuration = new Histogram({ name: 'stint_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['route'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] });
  readonly authFailures = new Counter({ name: 'stint_auth_failures_total', help: 'Rejected bearer tokens by reason', labelNames: ['code'], registers: [this.registry] });
  readonly refusals = new Counter({ name: 'stint_refused_actions_total', help: 'Refused actions (4xx domain errors) by code', labelNames: ['code'], registers: [this.registry] });
  readonly transitions = new Counter({ name: 'stint_transitions_total', help: 'Request and grant transitions', labelNames: ['kind', 'to'], registers: [this.registry] });
  readonly revocationFailures = new Counter({ name: 'stint_revocation_failures_total', help: 'Failed credential revocations (each retry counts)', labelNames: ['resource'], registers: [this.registry] });
  readonly revocationsPending = new Gauge({ name: 'stint_revocations_pending', help: 'Grants whose credentials are not revoked yet', registers: [this.registry] });
  readonly issueFailures = new Counter({ name: 'stint_credential_issue_failures_total', help: 'Failed credential issues at activation', labelNames: ['resource'], registers: [this.registry] });
  readonly writeBatch = new Histogram({ name: 'stint_write_batch_changes', help: 'Changes grouped into one storage commit', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [this.registry] });
  readonly sseClients = new Gauge({ name: 'stint_sse_clients', help: 'Connected event streams', registers: [this.registry] });
  // ---- what admins watch (#25); the gauges are read from storage at each scrape (http/table.ts)
  readonly requestsPending = new Gauge({ name: 'stint_requests_pending', help: 'Requests waiting, by state (pending_stepup, pending_approval)', labelNames: ['state'], registers: [this.registry] });
  readonly grantsActive = new Gauge({ name: 'stint_grants_active', help: 'Active grants', registers: [this.registry] });
  readonly revocationBacklogAge = new Gauge({ name: 'stint_revocation_backlog_age_seconds', help: 'How long the oldest ended grant has waited for its credentials to be revoked (0 when none waits)', registers: [this.registry] });
  readonly stepUpFailures = new Counter({ name: 'stint_stepup_failures_total', help: 'Refused step-up proofs, by what they were for and why', labelNames: ['kind', 'code'], registers: [this.registry] });
  readonly auditStreamed = new Counter({ name: 'stint_audit_stream_sent_total', help: 'Audit entries and checkpoints delivered to a stream sink', labelNames: ['sink'], registers: [this.registry] });
  readonly auditStreamDropped = new Counter({ name: 'stint_audit_stream_dropped_total', help: 'Audit entries and checkpoints a stream sink lost (queue full or delivery failed); the database keeps them', labelNames: ['sink'], registers: [this.registry] });
  readonly policyVersion = new Gauge({ name: 'stint_policy_version_info', help: 'The running version of each policy (value 1), with its content hash', labelNames: ['policy', 'version', 'hash'], registers: [this.registry] });
  readonly configReloads = new Counter({ name: 'stint_config_reloads_total', help: 'Config reloads by trigger (file, signal, api) and outcome (applied, unchanged, refused: an invalid file; failed: storage failed, nothing applied)', labelNames: ['trigger', 'outcome'], registers: [this.registry] });
  readonly webhookDeliveries = new Counter({ name: 'stint_webhook_attempts_total', help: 'Webhook send attempts by endpoint and outcome (delivered, retrying, failed: given up)', labelNames: ['endpoint', 'outcome'], registers: [this.registry] });
  readonly webhookFailures = new Counter({ name: 'stint_webhook_failures_total', help: 'Webhook send attempts that did not deliver (each retry counts)', labelNames: ['endpoint'], registers: [this.registry] });
  readonly webhookBacklog = new Gauge({ name: 'stint_webhook_backlog', help: 'Webhook events waiting to be delivered, by endpoint', labelNames: ['endpoint'], registers: [this.registry] });

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults) collectDefaultMetrics({ register: this.registry });
  }
}
