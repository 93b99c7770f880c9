// The grant server's configuration: one YAML file, validated with zod at start. A bad file fails fast with
// every problem listed as `path: what was expected`, so an operator can fix it without reading code.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { StepUpMethod, StepUpMode } from '../shared/contract/http';
import { claimPathProblem } from './identity/claim-path';
import { servicesUnapprovable, unapprovable } from './lifecycle/approvability';
import { Duration, IdString, Port, SecretRef } from './config-base';
import { KIND_NAMES, ResourceConfig, resourceSecretRefs } from './targets/registry';

export { Duration, SecretRef, resolveSecret, requireSecret, type SecretResolution } from './config-base';

const GroupList = z.array(z.string().min(1)).min(1, 'at least one group');

const HoursWindow = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$/, 'a UTC window like 09:00-18:00');
const Pattern = z.string().refine((p) => { try { new RegExp(p); return true; } catch { return false; } }, 'a valid regular expression');

/** A service identity's name: what policies name it by, and its subject (`service:<name>`) in requests and audit. */
export const ServiceName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a lower-case service name (letters, digits, dashes)');

/**
 * A machine client (CI job, bot) and the tokens that prove it: an access token from the IdP's client credentials
 * grant (issuer: the IdP, subject: the client id) or a workload identity token of a CI provider (its issuer, the
 * audience it was minted for, the subject it carries). `claims` must all match too (claim paths as groupsClaim).
 */
export const ServiceIdentity = z.strictObject({
  name: ServiceName,
  /** Default: identity.issuer. */
  issuer: z.url().optional(),
  /** Default: identity.audience. */
  audience: z.string().min(1).optional(),
  subject: z.string().min(1),
  claims: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()])).default({}),
});
export type ServiceIdentity = z.output<typeof ServiceIdentity>;

/**
 * What a policy lets services do. Services have no second factor, so a policy naming them never asks requesters for
 * step-up (refused at load); they always give a ticket; and they are auto-approved only inside their change window
 * (UTC), never by the human rules (groups, risk). Outside it they wait for the policy's approvers, or are refused.
 */
export const ServicePolicy = z.strictObject({
  requesters: z.array(ServiceName).min(1, 'at least one service name from identity.services'),
  ticket: z.strictObject({ pattern: Pattern }),
  autoApprove: z.strictObject({ window: HoursWindow }).optional(),
  outsideWindow: z.enum(['approval', 'refuse']).default('approval'),
});

export const PolicyConfig = z.strictObject({
  description: z.string().optional(),
  requesters: z.array(z.string().min(1)).default([]).describe('groups whose members may request'),
  services: ServicePolicy.optional(),
  duration: z.strictObject({ default: Duration, max: Duration }),
  reason: z.enum(['required', 'optional']).default('optional'),
  ticket: z.strictObject({
    pattern: Pattern,
    required: z.boolean().default(false),
  }).optional(),
  requestTtl: Duration.default(30 * 60),
  activationWindow: Duration.default(15 * 60),
  approvals: z.array(z.strictObject({ from: z.string().min(1), count: z.number().int().positive() })).default([]),
  /** Remind the approvers of a request nobody decided, this long after it was made (each once). */
  reminders: z.array(Duration).default([]),
  /** A group whose members may approve in any open slot once the request waited this long without a decision. */
  escalation: z.strictObject({ group: z.string().min(1), after: Duration }).optional(),
  autoApprove: z.strictObject({
    when: z.strictObject({
      groups: GroupList.optional(),
      environments: z.array(z.string()).optional(),
      hours: HoursWindow.optional(),
      riskBelow: z.number().int().min(0).max(101).optional(),
    }),
  }).optional(),
  stepUp: z.strictObject({
    request: StepUpMode.default('never'),
    approve: StepUpMode.default('never'),
    methods: z.array(StepUpMethod).min(1).default(['webauthn', 'totp']),
    /** `on-risk` asks for step-up when the request's risk score is at least this. */
    riskAtLeast: z.number().int().min(0).max(100).default(50),
    userVerification: z.boolean().default(true),
  }).default({ request: 'never', approve: 'never', methods: ['webauthn', 'totp'], riskAtLeast: 50, userVerification: true }),
  extend: z.strictObject({ maxTotal: Duration, reapproval: z.boolean().default(false) }).optional(),
  /**
   * End a grant whose agent has been silent this long (no heartbeat: lid closed, laptop lost). Off by default.
   * Agents heartbeat every 30 s, so at least a minute.
   */
  idleEnd: Duration.refine((seconds) => seconds >= 60, 'expected at least 1m (agents heartbeat every 30 s)').optional(),
  breakGlass: z.strictObject({
    groups: GroupList,
    reason: z.enum(['required']).default('required'),
    /** Who hears about it besides the policy's approvers; admins always do. */
    notify: z.array(z.string()).default([]),
  }).optional(),
}).superRefine((policy, ctx) => {
  if (policy.duration.default > policy.duration.max) ctx.addIssue({ code: 'custom', path: ['duration', 'default'], message: 'expected default ≤ max' });
  if (policy.extend && policy.extend.maxTotal < policy.duration.max) ctx.addIssue({ code: 'custom', path: ['extend', 'maxTotal'], message: 'expected maxTotal ≥ duration.max' });
  // No approvals and no autoApprove is refused per resource below (unapprovable), naming the resource.
  for (const [i, after] of policy.reminders.entries()) {
    if (after >= policy.requestTtl) ctx.addIssue({ code: 'custom', path: ['reminders', i], message: `expected less than requestTtl (${policy.requestTtl}s): a request expires before it` });
  }
  if (policy.escalation && policy.escalation.after >= policy.requestTtl) ctx.addIssue({ code: 'custom', path: ['escalation', 'after'], message: `expected less than requestTtl (${policy.requestTtl}s): a request expires before it` });
  if (policy.requesters.length === 0 && !policy.services) ctx.addIssue({ code: 'custom', path: ['requesters'], message: 'at least one group (or services.requesters)' });
  if (policy.services && policy.stepUp.request !== 'never') {
    ctx.addIssue({ code: 'custom', path: ['stepUp', 'request'], message: `a policy that names services cannot ask requesters for step-up (${policy.stepUp.request}): a service has no second factor. Give the services a policy of their own with stepUp.request: never` });
  }
  if (policy.services?.outsideWindow === 'refuse' && !policy.services.autoApprove) {
    ctx.addIssue({ code: 'custom', path: ['services', 'outsideWindow'], message: 'refuse needs a change window to refuse outside of (services.autoApprove.window)' });
  }
  const services = policy.services && servicesUnapprovable(policy);
  if (services) ctx.addIssue({ code: 'custom', path: ['services'], message: services });
  if (policy.extend?.reapproval && policy.approvals.length === 0) ctx.addIssue({ code: 'custom', path: ['extend', 'reapproval'], message: 'expected approval rules to re-approve extensions with (or reapproval: false)' });
});
export type PolicyConfig = z.output<typeof PolicyConfig>;

export { ResourceConfig };

const HOST_KEYS_NEEDED = 'the bastion\'s host keys (ssh-keyscan -t ed25519 <host> prints them): agents never trust a host key blind';

export const BastionConfig = z.strictObject({
  host: z.string().min(1),
  port: Port.default(22),
  user: z.string().min(1),
  /** Shared secret the bastion's AuthorizedKeysCommand presents to /v1/bastion. */
  token: SecretRef,
  /**
   * The bastion's host key lines (`ssh-ed25519 AAAA…`), which agents pin: required, so that nobody on the network
   * path can stand in for the bastion and receive a grant's database password. `ssh-keyscan -t ed25519 HOST` prints them.
   */
  hostKeys: z.array(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}( .*)?$/, 'an OpenSSH public key line, e.g. ssh-ed25519 AAAA…'), { error: HOST_KEYS_NEEDED })
    .min(1, HOST_KEYS_NEEDED),
});
export type BastionConfig = z.output<typeof BastionConfig>;

/** Calls per minute per caller, by class (0 turns a class off); see server/http/rate-limits.ts. */
export const RateLimits = z.strictObject({
  /** GETs of a signed-in user (the tray polls little: it follows the event stream). */
  read: z.number().int().min(0).default(600),
  /** Changes by a signed-in user: requests, approvals, ends, extensions. */
  write: z.number().int().min(0).default(120),
  /** Anything that checks or changes a proof or factor, or reveals a secret: step-up, factors, password reveal. */
  proof: z.number().int().min(0).default(30),
  /** Anonymous routes, per client IP: health, metrics, public metadata. */
  public: z.number().int().min(0).default(300),
});
export type RateLimits = z.output<typeof RateLimits>;

/** How often a failed webhook delivery is tried again: after `first`, doubling up to `max`, `attempts` tries in all. */
export const WebhookRetry = z.strictObject({
  first: Duration.default(5),
  max: Duration.default(3600),
  attempts: z.number().int().min(1).max(100).default(12),
});

export const WebhookEndpoint = z.strictObject({
  /** Where events are POSTed. A secret reference, since some URLs are themselves credentials (Slack's incoming webhooks). */
  url: SecretRef,
  /** The Standard Webhooks signing secret, `whsec_` + base64 (at least 24 random bytes). */
  secret: SecretRef,
  /** Event types to send: exact (`breakglass.used`), a family (`request.*`) or `*`. */
  events: z.array(z.string().regex(/^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_.]+)$/, 'an event type, a family like request.* or *')).min(1).default(['*']),
  /** `standard`: the Standard Webhooks JSON; `slack`: a Slack incoming-webhook message with buttons. */
  format: z.enum(['standard', 'slack']).default('standard'),
});
export type WebhookEndpoint = z.output<typeof WebhookEndpoint>;

export const WebhooksConfig = z.strictObject({
  endpoints: z.record(IdString, WebhookEndpoint).default({}),
  retry: WebhookRetry.default(WebhookRetry.parse({})),
  /** Failed step-ups of one user within an hour that make a `stepup.failures` event (and every this many more). */
  stepUpFailureThreshold: z.number().int().min(1).max(100).default(3),
});
export type WebhooksConfig = z.output<typeof WebhooksConfig>;

/** Break-glass reviews: due this long after the use, then reminded every `remindEvery` until recorded. */
export const ReviewsConfig = z.strictObject({
  dueAfter: Duration.default(24 * 3600),
  remindEvery: Duration.default(4 * 3600),
});

export const ServerConfig = z.strictObject({
  server: z.strictObject({
    url: z.url(),
    listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8080) })
      .default({ host: '127.0.0.1', port: 8080 }),
    /** Proxies whose X-Forwarded-For is trusted (CIDRs or addresses). Nothing else's is. */
    trustedProxies: z.array(z.string()).default([]),
    bodyLimitBytes: z.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024),
    heartbeatSeconds: z.number().positive().default(15),
    rateLimits: RateLimits.default(RateLimits.parse({})),
    /** Reload policies, resources and bastions when the config file changes (SIGHUP and the admin API always can). */
    watchConfig: z.boolean().default(true),
  }),
  identity: z.strictObject({
    issuer: z.url(),
    audience: z.string().min(1),
    /** Where tokens carry groups: `groups`, `realm_access.roles`, `https://example.com/groups`; `\.` is a literal dot. */
    groupsClaim: z.string().default('groups').superRefine((path, ctx) => {
      const problem = claimPathProblem(path);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    adminGroups: z.array(z.string()).default(['admins']),
    /** Require `typ: at+jwt` (RFC 9068) on access tokens. */
    requireAtJwt: z.boolean().default(false),
    /** The OAuth clients whose tokens are accepted (`azp`, when a token names one): e.g. [stint-agent]. Default: any. */
    clientIds: z.array(z.string().min(1)).optional(),
    /** Machine clients that may call the API as services (client credentials, workload identity tokens). */
    services: z.array(ServiceIdentity).default([]),
    /**
     * For an IdP that issues opaque (non-JWT) access tokens: RFC 7662 introspection, as this confidential client.
     * endpoint: default, the discovery document's introspection_endpoint. JWT access tokens never use it.
     */
    introspection: z.strictObject({ endpoint: z.url().optional(), clientId: z.string().min(1), clientSecret: SecretRef }).optional(),
    /** Allows the dev IdP (server/dev-idp) to be started by the demo. Never in production. */
    dev: z.boolean().default(false),
  }),
  storage: z.strictObject({
    url: z.string().regex(/^(sqlite:|postgres(ql)?:\/\/)/, 'sqlite:<path>, sqlite::memory: or postgres://…'),
    autoMigrate: z.boolean().default(true),
    /** PostgreSQL only: connection pool limits per server instance (SQLite uses one connection). */
    pool: z.strictObject({
      max: z.number().int().min(1).max(1000).default(10),
      /** How long a query waits for a free connection (or a new one) before failing, in ms. */
      connectTimeoutMs: z.number().int().min(100).max(120_000).default(5_000),
    }).default({ max: 10, connectTimeoutMs: 5_000 }),
    /**
     * PostgreSQL only: write batches one instance runs at once. 1 groups the most changes into each commit, which
     * is fastest while the database answers quickly (measured: bench/RESULTS.md); raise it when round trips are
     * slow (a database across a network), so one batch's waits do not hold up the next.
     */
    writeConcurrency: z.number().int().min(1).max(64).default(1),
    /**
     * PostgreSQL only: name (prepare) statements so each connection parses them once. Turn off behind a pooler that
     * cannot carry prepared statements across its server connections (PgBouncer before 1.21 in transaction mode).
     */
    preparedStatements: z.boolean().default(true),
  }).refine((storage) => storage.writeConcurrency < storage.pool.max, {
    message: 'storage.writeConcurrency must be below storage.pool.max (reads and revocations need connections too)',
    path: ['writeConcurrency'],
  }),
  webauthn: z.strictObject({ rpId: z.string().min(1), rpName: z.string().default('Stint'), origins: z.array(z.string()).min(1) }).optional(),
  stepup: z.strictObject({
    totpKey: SecretRef,
    /** How long a step-up challenge may be answered. */
    challengeTtl: Duration.default(120).refine((s) => s >= 10 && s <= 600, 'between 10s and 10m'),
    /** Wrong one-time codes before codes are locked, and for how long. */
    maxAttempts: z.number().int().min(1).max(20).default(5),
    lockout: Duration.default(300),
    /**
     * How soon after signing in a user may set up their FIRST factor (which needs no proof, there being none): a
     * stolen access token hours old cannot. Checked when the IdP puts auth_time in access tokens (see docs/admin.md).
     */
    firstFactorWindow: Duration.default(600),
  }).optional(),
  /**
   * The approve page (`<server.url>/approve/<request id>`, server/web): approvers sign in at the IdP with this OAuth
   * client (authorization code + PKCE; redirect URI `<server.url>/approve/auth/callback`) and decide from any browser.
   * The access token the client gets must be one this server accepts (issuer, audience, groups claim), as the agent's.
   */
  approvalPage: z.strictObject({
    clientId: z.string().min(1),
    /** A confidential client's secret (client_secret_basic); leave out for a public client. */
    clientSecret: SecretRef.optional(),
    scope: z.string().default('openid email profile'),
    /** RFC 8707 resource indicator sent with the sign-in, for IdPs that pick the token's audience by it. */
    resource: z.string().optional(),
    /** How long a signed-in page stays signed in. */
    sessionTtl: Duration.default(15 * 60).refine((s) => s >= 60 && s <= 12 * 3600, 'between 1m and 12h'),
  }).optional(),
  audit: z.strictObject({
    /**
     * Signed checkpoints of the audit chain's head, written outside the database (lifecycle/audit-checkpoints.ts):
     * `audit verify` then also finds a truncated tail or a re-hashed chain.
     */
    checkpoints: z.strictObject({
      /** An Ed25519 private key, PEM (openssl genpkey -algorithm ed25519). */
      key: SecretRef,
      /** Where they are appended, one JSON line each; ideally on another disk, shipped to a log store. */
      file: z.string().min(1),
      every: Duration.default(300),
      /** …and as soon as this many entries were appended since the last checkpoint. */
      afterEntries: z.number().int().positive().default(1000),
    }).optional(),
    /**
     * Every entry (and checkpoint) also goes to these, after its change committed, for a SIEM (server/audit/stream.ts):
     * RFC 5424 syslog over UDP or TCP, and an append-only JSON Lines file rotated by size.
     */
    stream: z.strictObject({
      syslog: z.array(z.strictObject({
        host: z.string().min(1),
        port: Port.default(514),
        protocol: z.enum(['udp', 'tcp']).default('udp'),
        /** Syslog facility number; 13 is "log audit". */
        facility: z.number().int().min(0).max(23).default(13),
      })).default([]),
      file: z.strictObject({
        path: z.string().min(1),
        maxBytes: z.number().int().min(1024).default(10 * 1024 * 1024),
        /** Rotated files kept besides the current one (path.1 newest … path.keep oldest). */
        keep: z.number().int().min(1).max(1000).default(5),
      }).optional(),
      /** Records each sink may have waiting; beyond it they are dropped and counted (stint_audit_stream_dropped_total). */
      queue: z.number().int().min(10).max(1_000_000).default(10_000),
    }).optional(),
  }).default({}),
  webhooks: WebhooksConfig.default(WebhooksConfig.parse({})),
  reviews: ReviewsConfig.default(ReviewsConfig.parse({})),
  bastions: z.record(IdString, BastionConfig).default({}),
  resources: z.array(ResourceConfig).default([]),
  policies: z.record(IdString, PolicyConfig).default({}),
}).superRefine((config, ctx) => {
  const names = new Set<string>();
  const proofs = new Set<string>();
  config.identity.services.forEach((service, index) => {
    const at = ['identity', 'services', index];
    if (names.has(service.name)) ctx.addIssue({ code: 'custom', path: [...at, 'name'], message: `expected a unique name, ${service.name} is used twice` });
    names.add(service.name);
    // The IdP's tokens are checked for identity.audience: a service of that issuer cannot have another.
    const ownIssuer = (service.issuer ?? config.identity.issuer) === config.identity.issuer;
    if (ownIssuer && service.audience !== undefined && service.audience !== config.identity.audience) {
      ctx.addIssue({ code: 'custom', path: [...at, 'audience'], message: `tokens of identity.issuer are for identity.audience (${config.identity.audience}); leave audience out` });
    }
    const proof = canonicalJson({ issuer: service.issuer ?? config.identity.issuer, audience: service.audience ?? config.identity.audience, subject: service.subject, claims: service.claims });
    if (proofs.has(proof)) ctx.addIssue({ code: 'custom', path: at, message: `expected tokens that prove one service only: another service has the same issuer, audience, subject and claims` });
    proofs.add(proof);
  });
  for (const [id, policy] of Object.entries(config.policies)) {
    policy.services?.requesters.forEach((name, index) => {
      if (!names.has(name)) ctx.addIssue({ code: 'custom', path: ['policies', id, 'services', 'requesters', index], message: `expected one of identity.services (${[...names].join(', ') || 'none defined'}), got ${name}` });
    });
  }
  const seen = new Set<string>();
  config.resources.forEach((resource, index) => {
    if (seen.has(resource.id)) ctx.addIssue({ code: 'custom', path: ['resources', index, 'id'], message: `expected a unique id, ${resource.id} is used twice` });
    seen.add(resource.id);
    if (!config.policies[resource.policy]) ctx.addIssue({ code: 'custom', path: ['resources', index, 'policy'], message: `expected one of the policies (${Object.keys(config.policies).join(', ') || 'none defined'}), got ${resource.policy}` });
    if (!config.bastions[resource.bastion]) ctx.addIssue({ code: 'custom', path: ['resources', index, 'bastion'], message: `expected one of the bastions (${Object.keys(config.bastions).join(', ') || 'none defined'}), got ${resource.bastion}` });
    // Every request on the resource must be auto-approved or wait for an approval rule (see lifecycle/approvability).
    const policy = config.policies[resource.policy];
    const problem = policy && unapprovable(resource, resource.policy, policy);
    if (problem) ctx.addIssue({ code: 'custom', path: ['policies', resource.policy], message: problem.message });
  });
});
export type ServerConfig = z.output<typeof ServerConfig>;
export type ServerConfigInput = z.input<typeof ServerConfig>;

export interface ConfigIssue { path: string; message: string }

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(readonly source: string, readonly issues: ConfigIssue[]) {
    super(`invalid configuration in ${source}:\n${issues.map((i) => `  - ${i.path || '(top)'}: ${i.message}`).join('\n')}`);
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/** Validate an already-parsed object (tests build configs in code). Throws ConfigError. */
export function validateConfig(input: unknown, source = 'config'): ServerConfig {
  const result = ServerConfig.safeParse(input);
  if (!result.success) {
    throw new ConfigError(source, result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: describeIssue(issue) })));
  }
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_type') {
    // A schema's own words for a missing value win over the generic ones (e.g. where a bastion's host keys come from).
    if (!issue.message.startsWith('Invalid input')) return `required: ${issue.message}`;
    return issue.message.endsWith('received undefined') ? `required (expected ${issue.expected})` : `expected ${issue.expected}${issue.message.includes('received') ? `, ${issue.message.slice(issue.message.indexOf('received'))}` : ''}`;
  }
  if (issue.code === 'invalid_format' && issue.format === 'url') return 'expected a URL like https://host';
  if (issue.code === 'invalid_union' && 'discriminator' in issue) return `expected one of the kinds: ${KIND_NAMES.join(', ')}`;
  if (issue.code === 'invalid_union') return 'expected one of the documented shapes (see config.example.yaml)';
  return issue.message;
}

export function parseConfig(yamlText: string, source = 'config'): ServerConfig {
  const doc = parseDocument(yamlText, { prettyErrors: true });
  if (doc.errors.length) {
    throw new ConfigError(source, doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}` : '', message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  return validateConfig(doc.toJS() ?? {}, source);
}

export function loadConfig(path: string): ServerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})` }]);
  }
  return parseConfig(text, path);
}

/** Every secret reference in the config with where it sits, for check-config and start-up. */
export function secretRefs(config: ServerConfig): { where: string; ref: SecretRef }[] {
  const refs: { where: string; ref: SecretRef }[] = [];
  if (config.stepup) refs.push({ where: 'stepup.totpKey', ref: config.stepup.totpKey });
  if (config.identity.introspection) refs.push({ where: 'identity.introspection.clientSecret', ref: config.identity.introspection.clientSecret });
  if (config.approvalPage?.clientSecret) refs.push({ where: 'approvalPage.clientSecret', ref: config.approvalPage.clientSecret });
  if (config.audit.checkpoints) refs.push({ where: 'audit.checkpoints.key', ref: config.audit.checkpoints.key });
  for (const [id, bastion] of Object.entries(config.bastions)) refs.push({ where: `bastions.${id}.token`, ref: bastion.token });
  config.resources.forEach((r, i) => refs.push(...resourceSecretRefs(r, `resources[${i}]`)));
  for (const [id, endpoint] of Object.entries(config.webhooks.endpoints)) refs.push({ where: `webhooks.endpoints.${id}.url`, ref: endpoint.url }, { where: `webhooks.endpoints.${id}.secret`, ref: endpoint.secret });
  return refs;
}

/** Stable content hash of one policy: a change in it gives the policy a new version. */
export function policyHash(policy: PolicyConfig): string {
  return createHash('sha256').update(canonicalJson(policy)).digest('hex');
}

/** JSON with object keys sorted at every level: the same content always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
